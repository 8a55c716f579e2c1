"""Resolve models: base metrics, fact datasets and user-defined aggregates -> specs.

``resolve_model`` never raises: problems become :class:`SmlError` entries located at the
aggregate (file, YAML path, line) that has them, so one bad aggregate does not hide
another's problems.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from aggsched.sml.errors import SmlError
from aggsched.sml.joins import JoinGraph
from aggsched.sml.objects import (
    AggregateAttributeRef,
    AggregateDef,
    Connection,
    Dataset,
    Metric,
    Model,
    Repository,
)
from aggsched.sml.spec import AggregateSpec, ResolvedAttribute, ResolvedMetric
from aggsched.sml.yamlio import child_path

_MEASURE_REF = re.compile(r"\[\s*Measures\s*\]\s*\.\s*\[((?:[^\]]|\]\])+)\]", re.IGNORECASE)


def measure_references(expression: str) -> list[str]:
    """Names X of every ``[Measures].[X]`` in an MDX expression (``]]`` unescaped)."""
    return [m.group(1).replace("]]", "]") for m in _MEASURE_REF.finditer(expression)]


class CalculationError(Exception):
    """A calculation that cannot be reduced to base metrics (cycle or none found)."""


@dataclass(frozen=True)
class FactDataset:
    """A dataset that metrics live on or fact relationships start from."""

    name: str
    allow_aggregates: bool


@dataclass(frozen=True)
class ResolvedModel:
    """A model with its facts, base metrics and resolved user-defined aggregates.

    ``aggregates`` holds only the aggregates that resolved without error; the errors of
    the others are in ``errors``.
    """

    model: Model
    repository: Repository = field(repr=False, compare=False)
    fact_datasets: tuple[FactDataset, ...]
    base_metrics: tuple[ResolvedMetric, ...]
    aggregates: tuple[AggregateSpec, ...]
    errors: tuple[SmlError, ...] = ()
    warnings: tuple[SmlError, ...] = ()
    missing: frozenset[str] = frozenset()

    def metrics_on(self, dataset: str) -> list[ResolvedMetric]:
        """The model's base metrics (direct or behind calculations) on ``dataset``."""
        return [m for m in self.base_metrics if m.dataset == dataset]

    def attributes_of(self, fact: str) -> list[ResolvedAttribute]:
        """Every attribute (with its join path) reachable from ``fact``."""
        return JoinGraph(self.repository, self.model).attributes(fact)


class _Measures:
    """Looks up metrics and calculations by unique_name, then by (unique) label."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        labels: dict[str, list[str]] = {}
        for table in (repo.metrics, repo.calculations):
            for name, obj in table.items():
                labels.setdefault(obj.label, []).append(name)
        self.by_label = {label: names[0] for label, names in labels.items() if len(names) == 1}

    def lookup(self, name: str) -> str | None:
        if name in self.repo.metrics or name in self.repo.calculations:
            return name
        return self.by_label.get(name)

    def base_metrics(self, name: str, stack: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
        """Base metric names behind ``name`` and the references that did not resolve."""
        if name in self.repo.metrics:
            return [name], []
        if name in stack:
            cycle = " -> ".join((*stack[stack.index(name) :], name))
            raise CalculationError(f"calculation cycle: {cycle}")
        calc = self.repo.calculations[name]
        bases: list[str] = []
        unknown: list[str] = []
        for ref in measure_references(calc.expression):
            target = self.lookup(ref)
            if target is None:
                unknown.append(ref)
                continue
            sub_bases, sub_unknown = self.base_metrics(target, (*stack, name))
            bases.extend(b for b in sub_bases if b not in bases)
            unknown.extend(sub_unknown)
        return bases, unknown


def resolved_metric(repo: Repository, metric: Metric) -> ResolvedMetric:
    """A metric with its column's type and computed SQL (if any)."""
    ds = repo.datasets.get(metric.dataset)
    col = ds.column(metric.column) if ds else None
    return ResolvedMetric(
        metric.unique_name,
        metric.label,
        metric.calculation_method,
        metric.dataset,
        metric.column,
        col.data_type if col else None,
        col.sql if col else None,
        col.dialects if col else (),
    )


class _ModelResolver:
    def __init__(self, repo: Repository, model: Model, ignore: Collection[str]) -> None:
        self.repo = repo
        self.model = model
        self.ignore = set(ignore)
        self.measures = _Measures(repo)
        self.graph = JoinGraph(repo, model)
        self.errors: list[SmlError] = []
        self.warnings: list[SmlError] = []
        self.missing: set[str] = set()
        self._reachable: dict[str, list[ResolvedAttribute]] = {}

    def error(self, path: str, line: int | None, message: str) -> None:
        self.errors.append(SmlError(self.model.file, path, line, message))

    def reachable(self, fact: str) -> list[ResolvedAttribute]:
        if fact not in self._reachable:
            self._reachable[fact] = self.graph.attributes(fact)
        return self._reachable[fact]

    # -- model-wide ----------------------------------------------------------------------
    def base_metrics(self) -> list[ResolvedMetric]:
        names: list[str] = []
        for name in self.model.metrics:
            if self.measures.lookup(name) is None:
                continue
            try:
                bases, _ = self.measures.base_metrics(name)
            except CalculationError:
                continue  # reported on the aggregates that use it
            names.extend(b for b in bases if b not in names)
        return [resolved_metric(self.repo, self.repo.metrics[n]) for n in names]

    def fact_datasets(self, metrics: list[ResolvedMetric]) -> list[FactDataset]:
        names: list[str] = []
        for ds in [r.from_dataset for r in self.model.relationships] + [m.dataset for m in metrics]:
            if ds not in names and ds in self.repo.datasets:
                names.append(ds)
        return [FactDataset(n, self.model.allow_aggregates(n)) for n in names]

    # -- aggregates ----------------------------------------------------------------------
    def aggregate(self, agg: AggregateDef) -> AggregateSpec | None:
        n_errors = len(self.errors)
        metrics = self._aggregate_metrics(agg)
        fact = self._fact_of(agg, metrics)
        attributes = [self._attribute(ref, fact) for ref in agg.attributes]
        if fact is None and not agg.metrics and agg.attributes:
            self.error(
                child_path(agg.yaml_path, "metrics"),
                agg.line,
                "an aggregate needs at least one metric (it decides the fact dataset)",
            )
        if len(self.errors) > n_errors or fact is None:
            return None
        if not self.model.allow_aggregates(fact):
            self.warnings.append(
                SmlError(
                    self.model.file,
                    agg.yaml_path,
                    agg.line,
                    f'dataset "{fact}" has allow_aggregates: false',
                )
            )
        attrs = tuple(a for a in attributes if a is not None)
        return AggregateSpec(
            unique_name=agg.unique_name,
            label=agg.label,
            model=self.model.unique_name,
            fact_dataset=fact,
            metrics=tuple(metrics),
            attributes=attrs,
            target_connection=agg.target_connection,
            requested_metrics=agg.metrics,
            datasets=(used := _datasets_of(self.repo, fact, attrs)),
            connections=_connections_of(self.repo, used, agg.target_connection),
        )

    def _aggregate_metrics(self, agg: AggregateDef) -> list[ResolvedMetric]:
        names: list[str] = []
        for index, requested in enumerate(agg.metrics):
            path = child_path(child_path(agg.yaml_path, "metrics"), index)
            for base in self._expand(requested, path, agg.metric_line(index)):
                if base not in names:
                    names.append(base)
        return [resolved_metric(self.repo, self.repo.metrics[n]) for n in names]

    def _expand(self, requested: str, path: str, line: int | None) -> list[str]:
        name = (
            requested
            if requested in self.repo.metrics or requested in self.repo.calculations
            else None
        )
        if name is None:
            if requested not in self.ignore:
                self.missing.add(requested)
                self.error(path, line, f'unknown metric "{requested}"')
            return []
        if name not in self.model.metrics:
            self.error(path, line, f'metric "{name}" is not in model "{self.model.unique_name}"')
            return []
        try:
            bases, unknown = self.measures.base_metrics(name)
        except CalculationError as exc:
            self.error(path, line, f'calculation "{name}": {exc}')
            return []
        unknown = list(dict.fromkeys(unknown))
        if not bases:
            detail = f" (unknown: {', '.join(unknown)})" if unknown else ""
            self.error(path, line, f'calculation "{name}" references no base metric{detail}')
        elif unknown:
            self.warnings.append(
                SmlError(
                    self.model.file,
                    path,
                    line,
                    f'calculation "{name}" references unknown measures: ' + ", ".join(unknown),
                )
            )
        return bases

    def _fact_of(self, agg: AggregateDef, metrics: list[ResolvedMetric]) -> str | None:
        by_dataset: dict[str, list[str]] = {}
        for metric in metrics:
            by_dataset.setdefault(metric.dataset, []).append(metric.unique_name)
        if len(by_dataset) == 1:
            return next(iter(by_dataset))
        if len(by_dataset) > 1:
            detail = "; ".join(f"{ds} ({', '.join(ms)})" for ds, ms in by_dataset.items())
            self.error(
                child_path(agg.yaml_path, "metrics"),
                agg.line,
                f"the metrics live on several datasets, an aggregate needs one: {detail}",
            )
        return None

    def _attribute(self, ref: AggregateAttributeRef, fact: str | None) -> ResolvedAttribute | None:
        dim = self._dimension_of(ref)
        if dim is None:
            return None
        if fact is None:
            return None  # no fact dataset: paths cannot be resolved (error already given)
        matches = [
            a
            for a in self.reachable(fact)
            if ref.name in (a.attribute, a.name)
            and ref.dimension in (a.dimension, a.dimension_name)
        ]
        return self._choose(ref, fact, matches)

    def _dimension_of(self, ref: AggregateAttributeRef) -> str | None:
        """The SML dimension named by ``ref`` (checks the attribute exists in it)."""
        dim = self.repo.dimensions.get(ref.dimension)
        if dim is None:
            if self._visible_dimension(ref.dimension):
                return ref.dimension  # a role-played name such as "Order Date Dimension"
            if ref.dimension not in self.ignore:
                self.missing.add(ref.dimension)
                self.error(
                    child_path(ref.yaml_path, "dimension"),
                    ref.line,
                    f'unknown dimension "{ref.dimension}"',
                )
            return None
        if dim.attribute(ref.name) is None and not self._visible_attribute(ref):
            self.error(
                child_path(ref.yaml_path, "name"),
                ref.line,
                f'unknown attribute "{ref.name}" in dimension "{ref.dimension}"',
            )
            return None
        return dim.unique_name

    def _visible_dimension(self, name: str) -> bool:
        return any(a.dimension_name == name for fact in self._facts() for a in self.reachable(fact))

    def _visible_attribute(self, ref: AggregateAttributeRef) -> bool:
        return any(a.name == ref.name for fact in self._facts() for a in self.reachable(fact))

    def _facts(self) -> list[str]:
        return [f.name for f in self.fact_datasets(self.base_metrics())]

    def _choose(
        self, ref: AggregateAttributeRef, fact: str, matches: list[ResolvedAttribute]
    ) -> ResolvedAttribute | None:
        path = ref.relationships_path
        if path:
            exact = [a for a in matches if a.relationships_path == path]
            matches = exact or [a for a in matches if a.relationships_path[: len(path)] == path]
        if len(matches) == 1:
            return _with_partition(matches[0], ref.partition)
        where = child_path(ref.yaml_path, "relationships_path" if path else "name")
        if not matches:
            via = f" via relationships_path [{', '.join(path)}]" if path else ""
            self.error(
                where,
                ref.line,
                f'attribute "{ref.name}" of dimension "{ref.dimension}" '
                f'is not reachable from dataset "{fact}"{via}',
            )
            return None
        options = "; ".join(f'"{a.name}" via {a.describe_path()}' for a in matches)
        self.error(
            where,
            ref.line,
            f'ambiguous attribute "{ref.name}" of dimension "{ref.dimension}": '
            f'{len(matches)} paths from dataset "{fact}" ({options}); '
            "name one with relationships_path",
        )
        return None


def _with_partition(attr: ResolvedAttribute, partition: str | None) -> ResolvedAttribute:
    if partition is None:
        return attr
    return ResolvedAttribute(**{**attr.__dict__, "partition": partition})


def _datasets_of(
    repo: Repository, fact: str, attrs: tuple[ResolvedAttribute, ...]
) -> dict[str, Dataset]:
    names = [fact]
    for attr in attrs:
        names.extend(step.right_dataset for step in attr.join_path)
    return {n: repo.datasets[n] for n in dict.fromkeys(names) if n in repo.datasets}


def _connections_of(
    repo: Repository, datasets: Mapping[str, Dataset], target: str | None
) -> dict[str, Connection]:
    names = [ds.connection_id for ds in datasets.values()] + ([target] if target else [])
    return {n: repo.connections[n] for n in dict.fromkeys(names) if n in repo.connections}


def resolve_model(repo: Repository, model: Model, *, ignore: Collection[str] = ()) -> ResolvedModel:
    """Resolve ``model``: facts, base metrics and every user-defined aggregate.

    ``ignore`` lists names whose absence is already reported elsewhere (objects that
    failed to load), so they do not produce a second error here.
    """
    resolver = _ModelResolver(repo, model, ignore)
    metrics = resolver.base_metrics()
    specs = [s for s in (resolver.aggregate(a) for a in model.aggregates) if s is not None]
    return ResolvedModel(
        model=model,
        repository=repo,
        fact_datasets=tuple(resolver.fact_datasets(metrics)),
        base_metrics=tuple(metrics),
        aggregates=tuple(specs),
        errors=tuple(resolver.errors),
        warnings=tuple(resolver.warnings),
        missing=frozenset(resolver.missing),
    )


def system_aggregates(resolved: ResolvedModel) -> list[AggregateSpec]:
    """One "all-member" spec per fact dataset that allows aggregates: its derivable base
    metrics and no attributes, named ``system_<dataset>_all``.
    """
    repo = resolved.repository
    specs = []
    for fact in resolved.fact_datasets:
        metrics = tuple(m for m in resolved.metrics_on(fact.name) if m.derivable)
        if not fact.allow_aggregates or not metrics:
            continue
        name = f"system_{fact.name}_all"
        specs.append(
            AggregateSpec(
                unique_name=name,
                label=name,
                model=resolved.model.unique_name,
                fact_dataset=fact.name,
                metrics=metrics,
                attributes=(),
                requested_metrics=tuple(m.unique_name for m in metrics),
                system=True,
                datasets=(used := _datasets_of(repo, fact.name, ())),
                connections=_connections_of(repo, used, None),
            )
        )
    return specs
