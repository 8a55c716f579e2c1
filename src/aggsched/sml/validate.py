"""Cross-object reference checks: every name an object uses must exist.

Runs after all files are built, so it sees the whole repository and reports every
dangling reference at once (file, YAML path, line). It never raises.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from aggsched.sml.errors import Diagnostics
from aggsched.sml.objects import (
    Attribute,
    Dataset,
    Dimension,
    DimensionRelationship,
    Model,
    Repository,
)
from aggsched.sml.yamlio import YamlDoc, child_path


class ReferenceChecker:
    """Checks one repository; ``missing`` collects every name that was not found."""

    def __init__(
        self,
        repo: Repository,
        docs: Mapping[str, YamlDoc],
        diags: Diagnostics,
        defective: Collection[str] = (),
    ) -> None:
        self.repo = repo
        self.docs = docs
        self.diags = diags
        self.defective = set(defective)
        self.missing: set[str] = set()

    def _error(self, file: str, path: str, message: str) -> None:
        doc = self.docs.get(file)
        self.diags.error(file, path, doc.line(path) if doc else None, message)

    def _ref(self, table: Mapping[str, object], kind: str, name: str, file: str, path: str) -> bool:
        """True when ``name`` exists in ``table``; otherwise records the error."""
        if name in table:
            return True
        if name not in self.defective:  # its own error is already reported
            self.missing.add(name)
            self._error(file, path, f'unknown {kind} "{name}"')
        return False

    def _column(self, ds: Dataset, col: str, file: str, path: str) -> None:
        if ds.column(col) is None:
            self._error(file, path, f'unknown column "{col}" in dataset "{ds.unique_name}"')

    def _columns(self, ds: Dataset, cols: Collection[str], file: str, path: str) -> None:
        for index, col in enumerate(cols):
            self._column(ds, col, file, child_path(path, index))

    # -- object types --------------------------------------------------------------------
    def check(self) -> None:
        """Run every check."""
        for ds in self.repo.datasets.values():
            self._check_dataset(ds)
        for metric in self.repo.metrics.values():
            if self._ref(self.repo.datasets, "dataset", metric.dataset, metric.file, "dataset"):
                ds = self.repo.datasets[metric.dataset]
                self._column(ds, metric.column, metric.file, "column")
        for dim in self.repo.dimensions.values():
            self._check_dimension(dim)
        for model in self.repo.models.values():
            self._check_model(model)

    def _check_dataset(self, ds: Dataset) -> None:
        self._ref(self.repo.connections, "connection", ds.connection_id, ds.file, "connection_id")
        if ds.incremental and ds.column(ds.incremental.column) is None:
            self._error(
                ds.file,
                "incremental.column",
                f'unknown column "{ds.incremental.column}" in dataset "{ds.unique_name}"',
            )
        partition = ds.incremental.agg_partition if ds.incremental else None
        if partition is not None:
            self._column(ds, partition.column, ds.file, "incremental.agg_partition.column")
            dim = self.repo.dimensions.get(partition.dimension)
            if (
                self._ref(
                    self.repo.dimensions,
                    "dimension",
                    partition.dimension,
                    ds.file,
                    "incremental.agg_partition.dimension",
                )
                and dim is not None
                and dim.attribute(partition.level) is None
            ):
                self._error(
                    ds.file, "incremental.agg_partition.level",
                    f'unknown level "{partition.level}" in dimension "{dim.unique_name}"',
                )  # fmt: skip

    def _check_attribute(self, dim: Dimension, attr: Attribute) -> None:
        path = attr.yaml_path
        if not self._ref(
            self.repo.datasets, "dataset", attr.dataset, dim.file, child_path(path, "dataset")
        ):
            return
        ds = self.repo.datasets[attr.dataset]
        self._columns(ds, attr.key_columns, dim.file, child_path(path, "key_columns"))
        for key in ("name_column", "sort_column"):
            col = getattr(attr, key)
            if col is not None:
                self._column(ds, col, dim.file, child_path(path, key))

    def _check_dimension(self, dim: Dimension) -> None:
        seen: set[str] = set()
        for attr in dim.attributes:
            if attr.unique_name in seen:
                self._error(
                    dim.file,
                    child_path(attr.yaml_path, "unique_name"),
                    f'duplicate attribute "{attr.unique_name}" in dimension',
                )
            seen.add(attr.unique_name)
            self._check_attribute(dim, attr)
        levels = {a.unique_name for a in dim.level_attributes}
        for h_index, hierarchy in enumerate(dim.hierarchies):
            for l_index, level in enumerate(hierarchy.levels):
                if level.unique_name not in levels:
                    path = f"hierarchies[{h_index}].levels[{l_index}].unique_name"
                    self._error(
                        dim.file,
                        path,
                        f'unknown level attribute "{level.unique_name}" in dimension',
                    )
        for rel in dim.relationships:
            self._check_dim_relationship(dim, rel)

    def _check_dim_relationship(self, dim: Dimension, rel: DimensionRelationship) -> None:
        path = rel.yaml_path
        self._ref(
            self.repo.datasets,
            "dataset",
            rel.from_dataset,
            dim.file,
            child_path(path, "from.dataset"),
        )
        if rel.from_dataset in self.repo.datasets:
            self._columns(
                self.repo.datasets[rel.from_dataset],
                rel.from_columns,
                dim.file,
                child_path(path, "from.join_columns"),
            )
        if rel.from_level and dim.attribute(rel.from_level) is None:
            self._error(
                dim.file,
                child_path(path, "from.level"),
                f'unknown level "{rel.from_level}" in dimension "{dim.unique_name}"',
            )
        target = dim
        if rel.type == "embedded":
            assert rel.to_dimension is not None
            if not self._ref(
                self.repo.dimensions,
                "dimension",
                rel.to_dimension,
                dim.file,
                child_path(path, "to.dimension"),
            ):
                return
            target = self.repo.dimensions[rel.to_dimension]
        self._check_target_level(
            target, rel.to_level, len(rel.from_columns), dim.file, child_path(path, "to.level")
        )

    def _check_target_level(
        self, dim: Dimension, level: str, n_cols: int, file: str, path: str
    ) -> None:
        attr = dim.attribute(level)
        if attr is None or attr.is_secondary:
            self._error(file, path, f'unknown level "{level}" in dimension "{dim.unique_name}"')
        elif len(attr.key_columns) != n_cols:
            self._error(
                file,
                path,
                f'{n_cols} join column(s) for level "{level}" which has '
                f"{len(attr.key_columns)} key column(s)",
            )

    def _check_model(self, model: Model) -> None:
        names: set[str] = set()
        for rel in model.relationships:
            if rel.unique_name in names:
                self._error(
                    model.file,
                    child_path(rel.yaml_path, "unique_name"),
                    f'duplicate relationship "{rel.unique_name}"',
                )
            names.add(rel.unique_name)
            self._ref(
                self.repo.datasets,
                "dataset",
                rel.from_dataset,
                model.file,
                child_path(rel.yaml_path, "from.dataset"),
            )
            if rel.from_dataset in self.repo.datasets:
                self._columns(
                    self.repo.datasets[rel.from_dataset],
                    rel.from_columns,
                    model.file,
                    child_path(rel.yaml_path, "from.join_columns"),
                )
            if rel.to_dimension is None or rel.to_level is None:
                continue
            if self._ref(
                self.repo.dimensions,
                "dimension",
                rel.to_dimension,
                model.file,
                child_path(rel.yaml_path, "to.dimension"),
            ):
                self._check_target_level(
                    self.repo.dimensions[rel.to_dimension],
                    rel.to_level,
                    len(rel.from_columns),
                    model.file,
                    child_path(rel.yaml_path, "to.level"),
                )
        self._check_model_lists(model)

    def _check_model_lists(self, model: Model) -> None:
        measures = {**self.repo.metrics, **self.repo.calculations}
        for index, name in enumerate(model.metrics):
            self._ref(measures, "metric", name, model.file, f"metrics[{index}]")
        for index, name in enumerate(model.dimensions):
            self._ref(self.repo.dimensions, "dimension", name, model.file, f"dimensions[{index}]")
        for name in model.dataset_properties:
            if name not in self.repo.datasets:
                doc = self.docs.get(model.file)
                path = f"dataset_properties.{name}"
                self.diags.warn(
                    model.file,
                    path,
                    doc.line(path) if doc else None,
                    f'dataset_properties names unknown dataset "{name}"',
                )
        seen: set[str] = set()
        for agg in model.aggregates:
            if agg.unique_name in seen:
                self._error(
                    model.file,
                    child_path(agg.yaml_path, "unique_name"),
                    f'duplicate aggregate "{agg.unique_name}"',
                )
            seen.add(agg.unique_name)
            if agg.target_connection is not None:
                self._ref(
                    self.repo.connections,
                    "connection",
                    agg.target_connection,
                    model.file,
                    child_path(agg.yaml_path, "target_connection"),
                )


def used_datasets(repo: Repository) -> set[str]:
    """Datasets some model can reach: they (and their connections) must be complete."""
    used: set[str] = set()
    dims: set[str] = set()
    for model in repo.models.values():
        used.update(r.from_dataset for r in model.relationships)
        dims.update(r.to_dimension for r in model.relationships if r.to_dimension)
        dims.update(model.dimensions)
        for name in model.metrics:
            if name in repo.metrics:
                used.add(repo.metrics[name].dataset)
    pending = list(dims)
    while pending:
        dim = repo.dimensions.get(pending.pop())
        if dim is None:
            continue
        used.update(a.dataset for a in dim.attributes)
        for rel in dim.relationships:
            used.add(rel.from_dataset)
            if rel.to_dimension and rel.to_dimension not in dims:
                dims.add(rel.to_dimension)
                pending.append(rel.to_dimension)
    return used
