"""The queryable form of a cube: what a semantic query may ask for and how to compute it.

Made from the resolved SML model when a project is published and stored as JSON with the
cube, so answering a query never re-reads YAML. It holds every attribute reachable from
every fact dataset (with its join path, as the build engine joins it), every base metric
with the options that change its values, and the model's calculations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from aggsched.planning.aggregates import dataset_incremental, full_relation
from aggsched.planning.partials import is_derivable
from aggsched.planning.spec import (
    Attribute,
    DefinitionSpec,
    Incremental,
    Join,
    Metric,
    Relation,
)
from aggsched.sml import FACT_ALIAS, ResolvedAttribute, ResolvedMetric, ResolvedModel


@dataclass(frozen=True)
class CubeJoin:
    """One LEFT JOIN of an attribute's path; the relation is `CubeSpec.relations[dataset]`."""

    alias: str
    dataset: str
    left_alias: str
    left_columns: tuple[str, ...]
    right_columns: tuple[str, ...]
    relationship: str = ""


@dataclass(frozen=True)
class CubeAttribute:
    """An attribute as reached from one fact along one path.

    `name`/`dimension` are the visible (role-played) names; `level` the SML attribute;
    `conformed` what makes it the same attribute when reached from another fact.
    """

    fact: str
    name: str
    dimension: str
    sml_dimension: str
    level: str
    path: tuple[str, ...]
    alias: str
    key_columns: tuple[str, ...]
    name_column: str | None
    joins: tuple[CubeJoin, ...] = ()
    is_entry: bool = False

    @property
    def conformed(self) -> tuple[str, str, str, tuple[str, ...]]:
        return (self.name, self.sml_dimension, self.level, self.path[1:])

    @property
    def attribute(self) -> Attribute:
        """The grain attribute of a definition spec (identity: name and path)."""
        return Attribute(
            self.name, self.alias, self.key_columns, self.name_column, self.dimension,
            self.level, self.path,
        )  # fmt: skip

    def describe(self) -> str:
        return f'"{self.name}" via [{", ".join(self.path)}]'


@dataclass(frozen=True)
class CubeMetric:
    """A base metric; `semi` is the (position, attribute name, path) a semi-additive metric
    takes its first/last value over; `problem` why it cannot be computed (or None)."""

    name: str
    label: str
    method: str
    dataset: str
    column: str
    semi: tuple[str, str, tuple[str, ...]] | None = None
    problem: str | None = None
    unrelated: str | None = None

    @property
    def metric(self) -> Metric:
        return Metric(self.name, self.method, FACT_ALIAS, self.column)


@dataclass(frozen=True)
class CubeCalculation:
    """A calculated metric (`metric_calc`): an MDX expression over other metrics."""

    name: str
    label: str
    expression: str


@dataclass(frozen=True)
class CubeRelationship:
    """A model (fact) relationship: what a `relationships_path` may start with."""

    name: str
    dataset: str
    dimension: str
    level: str
    role_play: str | None = None


@dataclass(frozen=True)
class CubeSpec:
    """Everything a query over one cube needs (see the module docstring)."""

    name: str
    relations: dict[str, Relation] = field(default_factory=dict)
    attributes: tuple[CubeAttribute, ...] = ()
    metrics: dict[str, CubeMetric] = field(default_factory=dict)
    calculations: dict[str, CubeCalculation] = field(default_factory=dict)
    relationships: dict[str, CubeRelationship] = field(default_factory=dict)
    incremental: dict[str, Incremental] = field(default_factory=dict)

    def attributes_of(self, fact: str) -> list[CubeAttribute]:
        return self._by_fact.get(fact, [])

    @cached_property
    def _by_fact(self) -> dict[str, list[CubeAttribute]]:
        found: dict[str, list[CubeAttribute]] = {}
        for attr in self.attributes:
            found.setdefault(attr.fact, []).append(attr)
        return found

    def joins(self, attributes: Iterable[CubeAttribute]) -> tuple[Join, ...]:
        """The distinct joins of `attributes`, in dependency order, as spec joins."""
        seen: dict[str, Join] = {}
        for attr in attributes:
            for j in attr.joins:
                if j.alias not in seen:
                    seen[j.alias] = Join(
                        j.alias, self.relations[j.dataset], j.left_alias, j.left_columns,
                        j.right_columns, j.relationship,
                    )  # fmt: skip
        return tuple(seen.values())

    # -- storage -------------------------------------------------------------------------
    def to_json(self) -> str:
        data = {
            "name": self.name,
            "relations": {k: asdict(v) for k, v in self.relations.items()},
            "attributes": [asdict(a) for a in self.attributes],
            "metrics": [asdict(m) for m in self.metrics.values()],
            "calculations": [asdict(c) for c in self.calculations.values()],
            "relationships": [asdict(r) for r in self.relationships.values()],
            "incremental": {k: asdict(v) for k, v in self.incremental.items()},
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CubeSpec:
        from aggsched.planning.spec import _relation

        data = json.loads(text)
        attributes = tuple(
            CubeAttribute(
                **{
                    **a,
                    "path": tuple(a["path"]),
                    "key_columns": tuple(a["key_columns"]),
                    "joins": tuple(
                        CubeJoin(
                            **{
                                **j,
                                "left_columns": tuple(j["left_columns"]),
                                "right_columns": tuple(j["right_columns"]),
                            }
                        )
                        for j in a["joins"]
                    ),
                }
            )
            for a in data["attributes"]
        )
        metrics = {}
        for m in data["metrics"]:
            semi = m.get("semi")
            metrics[m["name"]] = CubeMetric(
                **{**m, "semi": (semi[0], semi[1], tuple(semi[2])) if semi else None}
            )
        return cls(
            name=data["name"],
            relations={k: _relation(v) for k, v in data["relations"].items()},
            attributes=attributes,
            metrics=metrics,
            calculations={c["name"]: CubeCalculation(**c) for c in data["calculations"]},
            relationships={r["name"]: CubeRelationship(**r) for r in data.get("relationships", ())},
            incremental={k: Incremental(**v) for k, v in data.get("incremental", {}).items()},
        )


def _attribute(fact: str, attr: ResolvedAttribute) -> CubeAttribute:
    joins = tuple(
        CubeJoin(s.right_alias, s.right_dataset, s.left_alias, s.left_columns, s.right_columns,
                 s.relationship)
        for s in attr.join_path
    )  # fmt: skip
    return CubeAttribute(
        fact=fact, name=attr.name, dimension=attr.dimension_name, sml_dimension=attr.dimension,
        level=attr.attribute, path=attr.relationships_path, alias=attr.alias,
        key_columns=attr.key_columns, name_column=attr.name_column, joins=joins,
        is_entry=attr.is_entry,
    )  # fmt: skip


def _metric(metric: ResolvedMetric) -> CubeMetric:
    semi = None
    if metric.semi_position and metric.semi_attributes:
        (attr,) = metric.semi_attributes
        semi = (metric.semi_position, attr.name, attr.relationships_path)
    return CubeMetric(
        metric.unique_name, metric.label, metric.calculation_method.value, metric.dataset,
        metric.column, semi, metric.problem, metric.unrelated,
    )  # fmt: skip


def cube_spec(resolved: ResolvedModel) -> CubeSpec:
    """The queryable form of a resolved model (see the module docstring)."""
    repo = resolved.repository
    facts = [f.name for f in resolved.fact_datasets]
    attributes = [_attribute(fact, a) for fact in facts for a in resolved.attributes_of(fact)]
    datasets = set(facts) | {j.dataset for a in attributes for j in a.joins}
    relations = {
        name: full_relation(repo, repo.datasets[name])
        for name in sorted(datasets)
        if name in repo.datasets
    }
    calculations = {
        name: CubeCalculation(name, calc.label, calc.expression)
        for name in resolved.model.metrics
        if (calc := repo.calculations.get(name)) is not None
    }
    relationships = {
        r.unique_name: CubeRelationship(
            r.unique_name, r.from_dataset, r.to_dimension, r.to_level, r.role_play
        )
        for r in resolved.model.relationships
        if r.to_dimension and r.to_level
    }
    incremental = {
        fact: inc
        for fact in facts
        if fact in repo.datasets and (inc := dataset_incremental(repo.datasets[fact]))
    }
    return CubeSpec(
        name=resolved.model.unique_name,
        relations=relations,
        attributes=tuple(attributes),
        metrics={m.unique_name: _metric(m) for m in resolved.base_metrics},
        calculations=calculations,
        relationships=relationships,
        incremental=incremental,
    )


class SpecError(ValueError):
    """A grain that does not resolve against the cube (an attribute or metric is gone)."""


def grain_spec(
    cube: CubeSpec,
    name: str,
    fact: str,
    attributes: Iterable[tuple[str, tuple[str, ...]]],
    metrics: Iterable[str],
) -> DefinitionSpec:
    """The definition spec of an aggregate of `fact` at a grain named by attribute
    identities (name, relationships path) with `metrics` — how demand-defined aggregates
    are made from logged queries, and re-checked when a republish changes the model."""
    by_identity = {(a.name, a.path): a for a in cube.attributes_of(fact)}
    attrs = []
    for name_, path in attributes:
        attr = by_identity.get((name_, tuple(path)))
        if attr is None:
            raise SpecError(f'attribute "{name_}" via [{", ".join(path)}] is not in the model')
        attrs.append(attr)
    found = []
    for metric in metrics:
        m = cube.metrics.get(metric)
        if m is None or m.dataset != fact:
            raise SpecError(f'metric "{metric}" of dataset "{fact}" is not in the model')
        found.append(m.metric)
    incremental = cube.incremental.get(fact)
    if not all(is_derivable(m.method) for m in found):
        incremental = None
    return DefinitionSpec(
        name=name, fact_alias=FACT_ALIAS, fact=cube.relations[fact], joins=cube.joins(attrs),
        attributes=tuple(a.attribute for a in attrs), metrics=tuple(found),
        incremental=incremental,
    )  # fmt: skip


def as_json(value: Any) -> Any:
    """Plain JSON values of a cube-spec part (for messages and logs)."""
    return json.loads(json.dumps(value, default=str))
