"""SML (Semantic Modeling Language) repositories -> checked, resolved model objects.

Pure except :mod:`aggsched.sml.source`. Typical use::

    result = load_path(Path("repo"))            # or load_repository(files, env)
    repo = result.unwrap()                      # SmlLoadError lists every problem
    for spec in result.models["Retail TPCH"].aggregates: ...
    system_aggregates(result.models["Retail TPCH"])
"""

from aggsched.sml.errors import SmlError, SmlLoadError
from aggsched.sml.joins import JoinGraph
from aggsched.sml.loader import LoadResult, load_repository
from aggsched.sml.objects import (
    AggregateAttributeRef,
    AggregateDef,
    Attribute,
    Calculation,
    CalculationMethod,
    Catalog,
    Column,
    Connection,
    Dataset,
    DialectSql,
    Dimension,
    DimensionRelationship,
    Hierarchy,
    Incremental,
    Level,
    Metric,
    Model,
    ModelRelationship,
    OtherObject,
    Repository,
    SemiAdditive,
    parse_grace_period,
)
from aggsched.sml.resolve import (
    FactDataset,
    InvalidAggregate,
    ResolvedModel,
    measure_references,
    resolve_model,
    system_aggregates,
)
from aggsched.sml.source import SourceError, load_path, read_source
from aggsched.sml.spec import (
    FACT_ALIAS,
    AggregateSpec,
    JoinStep,
    ResolvedAttribute,
    ResolvedMetric,
)

__all__ = [
    "FACT_ALIAS",
    "AggregateAttributeRef",
    "AggregateDef",
    "AggregateSpec",
    "Attribute",
    "Calculation",
    "CalculationMethod",
    "Catalog",
    "Column",
    "Connection",
    "Dataset",
    "DialectSql",
    "Dimension",
    "DimensionRelationship",
    "FactDataset",
    "Hierarchy",
    "Incremental",
    "InvalidAggregate",
    "JoinGraph",
    "JoinStep",
    "Level",
    "LoadResult",
    "Metric",
    "Model",
    "ModelRelationship",
    "OtherObject",
    "Repository",
    "ResolvedAttribute",
    "ResolvedMetric",
    "ResolvedModel",
    "SemiAdditive",
    "SmlError",
    "SmlLoadError",
    "SourceError",
    "load_path",
    "load_repository",
    "measure_references",
    "parse_grace_period",
    "read_source",
    "resolve_model",
    "system_aggregates",
]
