"""``load_repository``: SML files (path -> bytes) in, a checked ``Repository`` out.

Pure: the caller supplies the files and the environment. Every problem of the whole
repository is collected (never only the first) so one publish attempt shows them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aggsched.sml.build import (
    build_calculation,
    build_catalog,
    build_connection,
    build_dataset,
    build_dimension,
    build_metric,
    build_model,
)
from aggsched.sml.errors import SmlError, SmlLoadError
from aggsched.sml.objects import Catalog, OtherObject, Repository
from aggsched.sml.reader import LoadContext, MapReader
from aggsched.sml.resolve import ResolvedModel, resolve_model
from aggsched.sml.validate import ReferenceChecker, used_datasets
from aggsched.sml.yamlio import (
    YamlDoc,
    YamlSyntaxError,
    decode,
    parse_dotenv,
    parse_yaml,
    sniff_identity,
)

KNOWN_OTHER_TYPES = frozenset({"composite_model", "row_security", "package"})
_BUILDERS: dict[str, tuple[str, Callable[[MapReader, str], Any]]] = {
    "connection": ("connections", build_connection),
    "dataset": ("datasets", build_dataset),
    "dimension": ("dimensions", build_dimension),
    "metric": ("metrics", build_metric),
    "metric_calc": ("calculations", build_calculation),
    "model": ("models", build_model),
}


@dataclass
class LoadResult:
    """Outcome of a load: the repository (None when there are errors) and diagnostics.

    ``models`` holds every model resolved (aggregate specs, facts, base metrics); it is
    filled even when other parts of the repository have errors. ``errors`` are problems
    of the model itself (it cannot be published); a user-defined aggregate that cannot be
    built as written is not one of them: it is in its model's ``invalid`` and
    ``aggregate_errors`` lists all of their errors (strict publishing refuses them).
    """

    repository: Repository | None
    errors: list[SmlError] = field(default_factory=list)
    warnings: list[SmlError] = field(default_factory=list)
    models: dict[str, ResolvedModel] = field(default_factory=dict)

    @property
    def aggregate_errors(self) -> list[SmlError]:
        """Every error of every invalid user-defined aggregate, model by model."""
        return [e for m in self.models.values() for e in m.errors]

    @property
    def ok(self) -> bool:
        """True when the repository loaded without errors."""
        return self.repository is not None and not self.errors

    def unwrap(self) -> Repository:
        """The repository, or :class:`SmlLoadError` listing every error."""
        if self.repository is None or self.errors:
            raise SmlLoadError(self.errors)
        return self.repository


@dataclass
class _Broken:
    file: str
    error: SmlError
    unique_name: str | None
    object_type: str | None


@dataclass
class _Registry:
    """Objects by kind and unique_name, plus where each was defined."""

    ctx: LoadContext
    tables: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {k: {} for k, _ in _BUILDERS.values()}
    )
    catalogs: list[Catalog] = field(default_factory=list)
    others: list[OtherObject] = field(default_factory=list)
    defective: set[str] = field(default_factory=set)

    def add(self, doc: YamlDoc) -> None:
        if not isinstance(doc.data, dict):
            what = "empty" if doc.data is None else f"not a mapping ({type(doc.data).__name__})"
            self.ctx.diags.warn(doc.file, "", 1, f"not an SML object ({what}); ignored")
            return
        root = MapReader(self.ctx, doc, doc.data, "")
        object_type = root.str("object_type", subst=False)
        if object_type is None:
            self.ctx.diags.warn(doc.file, "", 1, "no object_type; not an SML object, ignored")
            return
        name = root.str("unique_name", required=object_type != "package", subst=False)
        self.ctx.owner = (object_type, name or "")
        if object_type == "catalog" and name is not None:
            self.catalogs.append(build_catalog(root, name))
        elif object_type in _BUILDERS and name is not None:
            self._add_object(root, object_type, name)
        elif object_type not in _BUILDERS and object_type != "catalog":
            if object_type not in KNOWN_OTHER_TYPES:
                root.warn("object_type", f'unknown object_type "{object_type}"; ignored')
            self.others.append(OtherObject(object_type, name, doc.file, dict(doc.data)))

    def _add_object(self, root: MapReader, object_type: str, name: str) -> None:
        kind, builder = _BUILDERS[object_type]
        table = self.tables[kind]
        if name in table:
            first = table[name].file
            root.error("unique_name", f'duplicate {object_type} "{name}" (also in {first})')
            return
        self.ctx.owner = (kind, name)
        before = len(self.ctx.diags.errors)
        obj = builder(root, name)
        if obj is None or len(self.ctx.diags.errors) > before:
            self.defective.add(name)
        if obj is not None:
            table[name] = obj

    def repository(self) -> Repository:
        catalog = self.catalogs[0] if self.catalogs else Catalog("", "", None, {}, "")
        t = self.tables
        return Repository(
            catalog,
            t["connections"],
            t["datasets"],
            t["dimensions"],
            t["metrics"],
            t["calculations"],
            t["models"],
            tuple(self.others),
        )


def _is_sml_file(path: str) -> bool:
    parts = path.split("/")
    if any(p.startswith(".") for p in parts):
        return False  # .git, .github workflows ...
    return path.lower().endswith((".yml", ".yaml"))


def _variables(
    files: Mapping[str, bytes], env: Mapping[str, str], ctx_warn: Callable[[str], None]
) -> dict[str, str]:
    """``.env`` at the root first, then the environment."""
    variables = dict(env)
    if ".env" in files:
        try:
            variables.update(parse_dotenv(decode(files[".env"])))
        except YamlSyntaxError as exc:
            ctx_warn(exc.message)
    return variables


def _parse_all(
    files: Mapping[str, bytes], ctx: LoadContext
) -> tuple[dict[str, YamlDoc], list[_Broken]]:
    docs: dict[str, YamlDoc] = {}
    broken: list[_Broken] = []
    for path in sorted(p for p in files if _is_sml_file(p)):
        try:
            docs[path] = parse_yaml(path, files[path])
        except YamlSyntaxError as exc:
            err = SmlError(path, "", exc.line, f"YAML syntax error: {exc.message}", exc.column)
            broken.append(_Broken(path, err, *sniff_identity(files[path])))
    return docs, broken


def load_repository(files: Mapping[str, bytes], env: Mapping[str, str]) -> LoadResult:
    """Load and check an SML repository given as repository-relative path -> bytes.

    ``env`` backs ``${var}`` substitution after the root ``.env`` file.
    """
    ctx = LoadContext({})
    ctx.variables = _variables(files, env, lambda m: ctx.diags.warn(".env", "", None, m))
    docs, broken = _parse_all(files, ctx)
    registry = _Registry(ctx)
    for doc in docs.values():
        registry.add(doc)
    _check_catalog(registry, broken, ctx)
    repo = registry.repository()
    checker = ReferenceChecker(repo, docs, ctx.diags, registry.defective)
    checker.check()
    models = {
        name: resolve_model(repo, m, ignore=registry.defective) for name, m in repo.models.items()
    }
    missing = set(checker.missing)
    for resolved in models.values():
        ctx.diags.warnings.extend(resolved.warnings)
        missing |= resolved.missing
    _judge_broken(broken, missing, ctx)
    _judge_variables(repo, ctx)
    ok = not ctx.diags.errors
    return LoadResult(repo if ok else None, ctx.diags.errors, ctx.diags.warnings, models)


def _check_catalog(registry: _Registry, broken: list[_Broken], ctx: LoadContext) -> None:
    if len(registry.catalogs) > 1:
        files = ", ".join(c.file for c in registry.catalogs)
        ctx.diags.error(
            registry.catalogs[1].file, "object_type", None, f"more than one catalog ({files})"
        )
    if not registry.catalogs and not any(b.object_type == "catalog" for b in broken):
        ctx.diags.error("catalog.yml", "", None, "no catalog (catalog.yml) in the repository")


def _judge_broken(broken: list[_Broken], missing: set[str], ctx: LoadContext) -> None:
    """A file that does not parse is an error only if something needs what it defines."""
    for item in broken:
        needed = item.object_type in {"catalog", "model"} or (
            item.unique_name is not None and item.unique_name in missing
        )
        if needed:
            ctx.diags.errors.append(item.error)
        else:
            err = item.error
            ctx.diags.warnings.append(
                SmlError(
                    err.file,
                    err.yaml_path,
                    err.line,
                    f"{err.message} (nothing refers to this file; ignored)",
                    err.column,
                )
            )


def _judge_variables(repo: Repository, ctx: LoadContext) -> None:
    """Unresolved ``${var}``: an error where a model needs the value, else a warning."""
    used = used_datasets(repo)
    used_connections = {repo.datasets[d].connection_id for d in used if d in repo.datasets}
    for (kind, name), err in ctx.unresolved:
        unused = (kind == "datasets" and name not in used) or (
            kind == "connections" and name not in used_connections
        )
        (ctx.diags.warnings if unused else ctx.diags.errors).append(err)
