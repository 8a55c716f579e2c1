"""The join graph of a model: every attribute reachable from a fact dataset, and how.

From a fact dataset, a model relationship joins a dimension's level dataset; inside the
dimension, snowflake relationships join further datasets and embedded relationships
enter other dimensions (possibly role-played, e.g. ``Order {0}``; nested role plays
compose). Each reachable attribute becomes one :class:`ResolvedAttribute` per path.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from dataclasses import dataclass, replace

from aggsched.sml.objects import Attribute, Dimension, Model, Repository
from aggsched.sml.spec import FACT_ALIAS, JoinStep, ResolvedAttribute

_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def derive_alias(dataset: str, identity: tuple[str, ...]) -> str:
    """A short, stable alias for ``dataset`` reached along the relationship ``identity``."""
    digest = hashlib.sha1("\x1f".join(identity).encode("utf-8")).hexdigest()[:8]
    stem = _UNSAFE.sub("_", dataset).strip("_")[:40] or "t"
    return f"{stem}_{digest}"


def apply_roles(name: str, roles: tuple[str, ...]) -> str:
    """Role-play templates, outermost first: innermost applies first (nesting composes)."""
    for template in reversed(roles):
        name = template.replace("{0}", name)
    return name


@dataclass(frozen=True)
class _Route:
    """Where the walk stands: the alias of the current dataset and how it got there."""

    alias: str
    steps: tuple[JoinStep, ...] = ()
    identity: tuple[str, ...] = ()
    rel_names: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    dims: frozenset[str] = frozenset()
    entry: str | None = None  # the level the last relationship joins to

    def join(
        self,
        step_id: str,
        left_alias: str,
        left_cols: tuple[str, ...],
        dataset: str,
        right_cols: tuple[str, ...],
        rel: str,
        kind: str,
    ) -> _Route:
        """The route after joining ``dataset``; the alias derives from the whole path."""
        identity = (*self.identity, step_id)
        alias = derive_alias(dataset, identity)
        step = JoinStep(left_alias, left_cols, dataset, alias, right_cols, rel, kind)
        return replace(self, alias=alias, steps=(*self.steps, step), identity=identity)


class JoinGraph:
    """All attributes reachable from each fact dataset of one model."""

    def __init__(self, repo: Repository, model: Model) -> None:
        self.repo = repo
        self.model = model

    def attributes(self, fact: str) -> list[ResolvedAttribute]:
        """Every (attribute, path) reachable from ``fact``, in model order."""
        found: list[ResolvedAttribute] = []
        start = _Route(FACT_ALIAS)
        for rel in self.model.relationships:
            if rel.from_dataset != fact or rel.to_dimension is None or rel.to_level is None:
                continue
            dim = self.repo.dimensions.get(rel.to_dimension)
            level = dim.attribute(rel.to_level) if dim else None
            if dim is None or level is None:
                continue
            route = self._enter(
                start,
                fact,
                FACT_ALIAS,
                rel.from_columns,
                level,
                rel.unique_name,
                f"model:{rel.unique_name}",
                "model",
            )
            route = replace(
                route,
                rel_names=(rel.unique_name,),
                roles=(rel.role_play,) if rel.role_play else (),
                dims=frozenset({dim.unique_name}),
                entry=level.unique_name,
            )
            found.extend(self._walk(dim, level.dataset, route))
        for name in self.model.dimensions:
            dim = self.repo.dimensions.get(name)
            if dim is not None and any(a.dataset == fact for a in dim.attributes):
                found.extend(self._walk(dim, fact, replace(start, dims=frozenset({name}))))
        return _dedupe(found)

    @staticmethod
    def _enter(
        route: _Route,
        left_dataset: str,
        left_alias: str,
        left_cols: tuple[str, ...],
        level: Attribute,
        rel: str,
        step_id: str,
        kind: str,
    ) -> _Route:
        """Join ``level``'s dataset, unless it is the same rows (same dataset and keys)."""
        if level.dataset == left_dataset and tuple(level.key_columns) == tuple(left_cols):
            return replace(route, alias=left_alias)
        return route.join(
            step_id, left_alias, left_cols, level.dataset, level.key_columns, rel, kind
        )

    def _snowflake(self, dim: Dimension, entry: str, route: _Route) -> dict[str, _Route]:
        """Datasets of ``dim`` reachable from ``entry`` via snowflake joins (BFS)."""
        reach = {entry: route}
        queue = deque([entry])
        while queue:
            current = queue.popleft()
            for rel in dim.relationships:
                target = dim.attribute(rel.to_level)
                if rel.type != "snowflake" or rel.from_dataset != current or target is None:
                    continue
                if target.dataset in reach:
                    continue
                here = reach[current]
                reach[target.dataset] = self._enter(
                    here,
                    current,
                    here.alias,
                    rel.from_columns,
                    target,
                    rel.unique_name,
                    f"{dim.unique_name}:{rel.unique_name}",
                    "snowflake",
                )
                queue.append(target.dataset)
        return reach

    def _walk(self, dim: Dimension, entry: str, route: _Route) -> list[ResolvedAttribute]:
        reach = self._snowflake(dim, entry, route)
        found = [
            self._resolved(dim, a, reach[a.dataset]) for a in dim.attributes if a.dataset in reach
        ]
        for rel in dim.relationships:
            if rel.type != "embedded" or rel.from_dataset not in reach or not rel.to_dimension:
                continue
            target_dim = self.repo.dimensions.get(rel.to_dimension)
            level = target_dim.attribute(rel.to_level) if target_dim else None
            if target_dim is None or level is None or target_dim.unique_name in route.dims:
                continue  # unknown (reported elsewhere) or a cycle
            here = reach[rel.from_dataset]
            nxt = self._enter(
                here,
                rel.from_dataset,
                here.alias,
                rel.from_columns,
                level,
                rel.unique_name,
                f"{dim.unique_name}:{rel.unique_name}",
                "embedded",
            )
            nxt = replace(
                nxt,
                rel_names=(*here.rel_names, rel.unique_name),
                roles=(*here.roles, rel.role_play) if rel.role_play else here.roles,
                dims=here.dims | {target_dim.unique_name},
                entry=level.unique_name,
            )
            found.extend(self._walk(target_dim, level.dataset, nxt))
        return found

    @staticmethod
    def _resolved(dim: Dimension, attr: Attribute, route: _Route) -> ResolvedAttribute:
        return ResolvedAttribute(
            name=apply_roles(attr.unique_name, route.roles),
            dimension=dim.unique_name,
            dimension_name=apply_roles(dim.unique_name, route.roles),
            attribute=attr.unique_name,
            dataset=attr.dataset,
            alias=route.alias,
            key_columns=attr.key_columns,
            name_column=attr.name_column,
            sort_column=attr.sort_column,
            join_path=route.steps,
            relationships_path=route.rel_names,
            is_secondary=attr.is_secondary,
            time_unit=attr.time_unit,
            is_entry=attr.unique_name == route.entry,
        )


def _dedupe(found: list[ResolvedAttribute]) -> list[ResolvedAttribute]:
    seen: set[tuple[str, str, str, str]] = set()
    result = []
    for attr in found:
        key = (attr.name, attr.dimension, attr.attribute, attr.alias)
        if key not in seen:
            seen.add(key)
            result.append(attr)
    return result
