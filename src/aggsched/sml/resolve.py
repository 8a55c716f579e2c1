"""Resolve models: base metrics, fact datasets and user-defined aggregates -> specs.

``resolve_model`` never raises: problems become :class:`SmlError` entries located at the
aggregate (file, YAML path, line) that has them, so one bad aggregate does not hide
another's problems.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from aggsched.sml.errors import SmlError
from aggsched.sml.joins import JoinGraph
from aggsched.sml.objects import (
    AggregateAttributeRef,
    AggregateDef,
    CalculationMethod,
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
class InvalidAggregate:
    """A user-defined aggregate that cannot be built as written, and why (every reason)."""

    unique_name: str
    label: str
    errors: tuple[SmlError, ...]

    @property
    def reason(self) -> str:
        return "; ".join(str(e) for e in self.errors)


@dataclass(frozen=True)
class ResolvedModel:
    """A model with its facts, base metrics and resolved user-defined aggregates.

    ``aggregates`` holds only the aggregates that resolved without error; the others are
    in ``invalid`` with their errors (a publish stores them as invalid definitions, or
    refuses the repository in strict mode).
    """

    model: Model
    repository: Repository = field(repr=False, compare=False)
    fact_datasets: tuple[FactDataset, ...]
    base_metrics: tuple[ResolvedMetric, ...]
    aggregates: tuple[AggregateSpec, ...]
    invalid: tuple[InvalidAggregate, ...] = ()
    warnings: tuple[SmlError, ...] = ()
    missing: frozenset[str] = frozenset()

    @property
    def errors(self) -> tuple[SmlError, ...]:
        """Every error of every invalid aggregate."""
        return tuple(e for bad in self.invalid for e in bad.errors)

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


def resolved_metric(
    repo: Repository, metric: Metric, reachable: list[ResolvedAttribute] | None = None
) -> ResolvedMetric:
    """A metric with its column's type and computed SQL (if any), its semi-additive
    attributes resolved among ``reachable`` (the attributes of its dataset), and the
    reason it cannot be computed, if an option asks for what aggsched does not do."""
    ds = repo.datasets.get(metric.dataset)
    col = ds.column(metric.column) if ds else None
    semi, problem = _semi_attributes(metric, reachable or [])
    return ResolvedMetric(
        metric.unique_name,
        metric.label,
        metric.calculation_method,
        metric.dataset,
        metric.column,
        col.data_type if col else None,
        col.sql if col else None,
        col.dialects if col else (),
        semi_position=metric.semi_additive.position if metric.semi_additive else None,
        semi_attributes=semi,
        problem=problem or _option_problem(metric),
        unrelated=metric.unrelated_dimensions_handling,
    )


def _option_problem(metric: Metric) -> str | None:
    """Why a metric option is refused (None: every option it uses is computed right)."""
    where = f'metric "{metric.unique_name}" ({metric.file})'
    if metric.calculation_method is CalculationMethod.PERCENTILE:
        if metric.custom_quantiles:
            return f"{where}: custom_quantiles are not computed by aggsched (only the median)"
        if metric.named_quantiles not in (None, "median"):
            return (
                f"{where}: named_quantiles {metric.named_quantiles} is not computed by "
                "aggsched (only median)"
            )
    if metric.semi_additive and metric.calculation_method not in _SEMI_METHODS:
        return (
            f"{where}: semi_additive with calculation_method "
            f"{metric.calculation_method.value} (SML allows sum, average, minimum, maximum)"
        )
    return None


_SEMI_METHODS = frozenset(
    {
        CalculationMethod.SUM,
        CalculationMethod.AVERAGE,
        CalculationMethod.MINIMUM,
        CalculationMethod.MAXIMUM,
    }
)


def _semi_attributes(
    metric: Metric, reachable: list[ResolvedAttribute]
) -> tuple[tuple[ResolvedAttribute, ...], str | None]:
    """The attributes a semi-additive metric takes its first/last value over: the level
    each relationship path ends at, and each named degenerate dimension level."""
    semi = metric.semi_additive
    if semi is None:
        return (), None
    where = f'metric "{metric.unique_name}" ({metric.file}): semi_additive'
    found: list[ResolvedAttribute] = []
    for path in semi.relationships:
        matches = [a for a in reachable if a.relationships_path == path and a.is_entry]
        if len(matches) != 1:
            return (), f"{where}: relationships path [{', '.join(path)}] leads to no level"
        found.append(matches[0])
    for name, level in semi.degenerate_dimensions:
        matches = [
            a for a in reachable
            if a.dimension == name and a.attribute == level and not a.relationships_path
        ]  # fmt: skip
        if len(matches) != 1:
            return (), f'{where}: no degenerate dimension "{name}" level "{level}"'
        found.append(matches[0])
    if len(found) > 1:
        names = ", ".join(a.name for a in found)
        return (), f"{where}: over more than one dimension ({names}) is not computed"
    return tuple(found), None


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
        self._relationships = {r.unique_name: r for r in model.relationships}

    def error(self, path: str, line: int | None, message: str) -> None:
        self.errors.append(SmlError(self.model.file, path, line, message))

    def reachable(self, fact: str) -> list[ResolvedAttribute]:
        if fact not in self._reachable:
            self._reachable[fact] = self.graph.attributes(fact)
        return self._reachable[fact]

    def metric(self, name: str) -> ResolvedMetric:
        metric = self.repo.metrics[name]
        return resolved_metric(self.repo, metric, self.reachable(metric.dataset))

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
        return [self.metric(n) for n in names]

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
        facts = list(dict.fromkeys(m.dataset for m in metrics))
        if not facts:
            if not agg.metrics and agg.attributes:
                self.error(
                    child_path(agg.yaml_path, "metrics"),
                    agg.line,
                    "an aggregate needs at least one metric (it decides the fact dataset)",
                )
            for ref in agg.attributes:
                self._dimension_of(ref)
            return None
        per_fact = {
            fact: [self._attribute(ref, fact, len(facts) > 1) for ref in agg.attributes]
            for fact in facts
        }
        self._check_metrics(agg, metrics, per_fact)
        if len(self.errors) > n_errors:
            return None
        for fact in facts:
            if not self.model.allow_aggregates(fact):
                self.warnings.append(
                    SmlError(
                        self.model.file,
                        agg.yaml_path,
                        agg.line,
                        f'dataset "{fact}" has allow_aggregates: false',
                    )
                )
        specs = [
            self._spec(agg, fact, [m for m in metrics if m.dataset == fact], per_fact[fact])
            for fact in facts
        ]
        return replace(specs[0], others=tuple(specs[1:]))

    def _spec(
        self,
        agg: AggregateDef,
        fact: str,
        metrics: list[ResolvedMetric],
        attributes: list[ResolvedAttribute | None],
    ) -> AggregateSpec:
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

    def _check_metrics(
        self,
        agg: AggregateDef,
        metrics: list[ResolvedMetric],
        per_fact: dict[str, list[ResolvedAttribute | None]],
    ) -> None:
        """Metrics whose values this aggregate could not hold right are refused with the
        reason (never built wrong): SML options aggsched does not compute, and
        semi-additive metrics without the level they must not be summed over."""
        path = child_path(agg.yaml_path, "metrics")
        for metric in metrics:
            attributes = per_fact[metric.dataset]
            grain = {(a.name, a.relationships_path) for a in attributes if a is not None}
            if metric.problem:
                self.error(path, agg.line, metric.problem)
            for semi in metric.semi_attributes:
                if (semi.name, semi.relationships_path) not in grain:
                    self.error(
                        path,
                        agg.line,
                        f'semi-additive metric "{metric.unique_name}" takes its '
                        f'{metric.semi_position} value over "{semi.name}" '
                        f"(relationships_path {semi.describe_path()}): the aggregate must "
                        "have that attribute in its grain, or its totals would add up "
                        "values that must not be added",
                    )

    def _aggregate_metrics(self, agg: AggregateDef) -> list[ResolvedMetric]:
        names: list[str] = []
        for index, requested in enumerate(agg.metrics):
            path = child_path(child_path(agg.yaml_path, "metrics"), index)
            for base in self._expand(requested, path, agg.metric_line(index)):
                if base not in names:
                    names.append(base)
        return [self.metric(n) for n in names]

    def _expand(self, requested: str, path: str, line: int | None) -> list[str]:
        name = (
            requested
            if requested in self.repo.metrics or requested in self.repo.calculations
            else None
        )
        if name is None:
            if requested not in self.ignore:
                self.missing.add(requested)
                close = difflib.get_close_matches(requested, self.model.metrics, n=3)
                hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
                self.error(path, line, f'unknown metric "{requested}"{hint}')
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

    def _attribute(
        self, ref: AggregateAttributeRef, fact: str, multi: bool = False
    ) -> ResolvedAttribute | None:
        dim = self._dimension_of(ref)
        if dim is None:
            return None
        matches = [
            a
            for a in self.reachable(fact)
            if ref.name in (a.attribute, a.name)
            and ref.dimension in (a.dimension, a.dimension_name)
        ]
        path = self._own_path(ref, fact)
        if path is None:
            return None
        return self._choose(ref, fact, matches, path, multi)

    def _own_path(self, ref: AggregateAttributeRef, fact: str) -> tuple[str, ...] | None:
        """``relationships_path`` as it applies to ``fact``: a path that starts with
        another fact's relationship selects the role play, so it maps to ``fact``'s own
        relationship to the same dimension with the same role play (None: there is none,
        with the error said)."""
        path = ref.relationships_path
        first = self._relationships.get(path[0]) if path else None
        if first is None or first.from_dataset == fact:
            return path
        own = [
            r
            for r in self.model.relationships
            if r.from_dataset == fact
            and r.to_dimension == first.to_dimension
            and r.role_play == first.role_play
        ]
        same_level = [r for r in own if r.to_level == first.to_level]
        chosen = same_level or own
        if len(chosen) == 1:
            return (chosen[0].unique_name, *path[1:])
        role = f'role play "{first.role_play}"' if first.role_play else "no role play"
        where = child_path(ref.yaml_path, "relationships_path")
        if not chosen:
            others = [
                f"{r.unique_name} ({r.role_play or 'no role play'})"
                for r in self.model.relationships
                if r.from_dataset == fact and r.to_dimension == first.to_dimension
            ]
            fit = f"; its relationships to it: {', '.join(others)}" if others else ""
            self.error(
                where,
                ref.line,
                f'relationships_path starts with "{first.unique_name}", a relationship of '
                f'dataset "{first.from_dataset}"; dataset "{fact}" has no relationship to '
                f'dimension "{first.to_dimension}" with {role}{fit}',
            )
        else:
            names = ", ".join(r.unique_name for r in chosen)
            self.error(
                where,
                ref.line,
                f'relationships_path starts with "{first.unique_name}" of dataset '
                f'"{first.from_dataset}"; dataset "{fact}" has several relationships to '
                f'dimension "{first.to_dimension}" with {role} ({names}): name one of them',
            )
        return None

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
        self,
        ref: AggregateAttributeRef,
        fact: str,
        matches: list[ResolvedAttribute],
        path: tuple[str, ...],
        multi: bool,
    ) -> ResolvedAttribute | None:
        if path:
            exact = [a for a in matches if a.relationships_path == path]
            matches = exact or [a for a in matches if a.relationships_path[: len(path)] == path]
        if len(matches) == 1:
            return _with_partition(matches[0], ref.partition)
        where = child_path(ref.yaml_path, "relationships_path" if path else "name")
        if not matches:
            via = f" via relationships_path [{', '.join(path)}]" if path else ""
            why = " (every grain attribute of a multi-fact aggregate must be)" if multi else ""
            self.error(
                where,
                ref.line,
                f'attribute "{ref.name}" of dimension "{ref.dimension}" '
                f'is not reachable from dataset "{fact}"{via}{why}',
            )
            return None
        self.error(where, ref.line, _ambiguity(ref, fact, matches))
        return None


def _ambiguity(ref: AggregateAttributeRef, fact: str, matches: list[ResolvedAttribute]) -> str:
    """The ambiguous-attribute message: every candidate path in full, relationship by
    relationship, and the one straight from the fact when there is exactly one."""
    options = "; ".join(
        f'"{a.name}" via relationships_path: [{", ".join(a.relationships_path)}]' for a in matches
    )
    direct = [a for a in matches if len(a.relationships_path) <= 1]
    hint = "name one with relationships_path"
    if len(direct) == 1:
        hint = (
            "name one with relationships_path, e.g. the one straight from the fact: "
            f"[{', '.join(direct[0].relationships_path)}]"
        )
    return (
        f'ambiguous attribute "{ref.name}" of dimension "{ref.dimension}": '
        f'{len(matches)} paths from dataset "{fact}" ({options}); {hint}'
    )


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
    specs: list[AggregateSpec] = []
    invalid: list[InvalidAggregate] = []
    for agg in model.aggregates:
        before = len(resolver.errors)
        spec = resolver.aggregate(agg)
        if spec is not None:
            specs.append(spec)
        else:
            invalid.append(
                InvalidAggregate(agg.unique_name, agg.label, tuple(resolver.errors[before:]))
            )
    return ResolvedModel(
        model=model,
        repository=repo,
        fact_datasets=tuple(resolver.fact_datasets(metrics)),
        base_metrics=tuple(metrics),
        aggregates=tuple(specs),
        invalid=tuple(invalid),
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
        metrics = tuple(
            m
            for m in resolved.metrics_on(fact.name)
            if m.derivable and not m.semi_additive and m.problem is None
        )
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
