"""Payloads of the query endpoints (extension), modelled on Cube's `/v1/load` query.

A query names `metrics` (metric unique names or labels, calculated metrics included),
`attributes` to group by (a name, or an object with the dimension and the
`relationships_path` that selects a role play, as aggregates name them), `filters`
(conditions on attributes or metrics, combined with `and`/`or`; a list is an `and`),
`order_by`, `limit` and `offset`; `explain: true` returns the plan and SQL only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aggsched.planning import query as q

Scalar = str | int | float | bool | None
Operator = Literal[
    "=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null", "is_not_null"
]


class AttributeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    dimension: str | None = Field(None, max_length=255)
    relationships_path: list[str] = Field(default_factory=list, max_length=20)

    def ref(self) -> q.AttributeRef:
        return q.AttributeRef(self.name, self.dimension, tuple(self.relationships_path))


class ConditionIn(BaseModel):
    """One condition: `member` (an attribute or metric name; or say which with
    `attribute` / `metric`), an operator and its values."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    member: str | None = Field(None, max_length=255)
    attribute: str | AttributeIn | None = None
    metric: str | None = Field(None, max_length=255)
    op: Operator = Field(alias="operator")
    values: list[Scalar] = Field(default_factory=list, max_length=1000)
    value: Scalar = None

    @model_validator(mode="after")
    def _one_member(self) -> ConditionIn:
        given = [x for x in (self.member, self.attribute, self.metric) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of member, attribute or metric")
        return self

    def condition(self) -> q.Condition:
        values = tuple(self.values) or ((self.value,) if self.value is not None else ())
        if self.attribute is not None:
            member: q.AttributeRef | str = (
                self.attribute.ref()
                if isinstance(self.attribute, AttributeIn)
                else q.AttributeRef(self.attribute)
            )
        else:
            member = self.metric or self.member or ""
        return q.Condition(member, self.op, values)


class GroupIn(BaseModel):
    """`{"and": [...]}` or `{"or": [...]}` of conditions and groups."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    and_: list[ConditionIn | GroupIn] | None = Field(None, alias="and", max_length=100)
    or_: list[ConditionIn | GroupIn] | None = Field(None, alias="or", max_length=100)

    @model_validator(mode="after")
    def _one_op(self) -> GroupIn:
        if (self.and_ is None) == (self.or_ is None):
            raise ValueError('a group is {"and": [...]} or {"or": [...]}')
        return self

    def logical(self) -> q.Logical:
        op, items = ("and", self.and_) if self.and_ is not None else ("or", self.or_ or [])
        return q.Logical(op, tuple(_filter(i) for i in items))  # type: ignore[arg-type]


def _filter(item: ConditionIn | GroupIn) -> q.Filter:
    return item.condition() if isinstance(item, ConditionIn) else item.logical()


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: str = Field(min_length=1, max_length=255)
    direction: Literal["asc", "desc"] = "asc"


class QueryIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "metrics": ["revenue", "quantity"],
                    "attributes": ["Ship Year", "Return Flag"],
                    "filters": [
                        {"attribute": "Ship Mode", "operator": "in", "values": ["AIR", "RAIL"]},
                        {"metric": "revenue", "operator": ">", "value": 1000},
                    ],
                    "order_by": [{"member": "revenue", "direction": "desc"}],
                    "limit": 100,
                },
                {
                    "metrics": ["order_total"],
                    "attributes": [
                        {
                            "name": "Year",
                            "dimension": "Calendar",
                            "relationships_path": ["orders_order", "order_date"],
                        }
                    ],
                    "filters": [
                        {
                            "or": [
                                {"member": "Market Segment", "operator": "=", "value": "BUILDING"},
                                {"member": "Market Segment", "operator": "is_null"},
                            ]
                        }
                    ],
                    "explain": True,
                },
            ]
        },
    )

    metrics: list[str] = Field(min_length=1, max_length=100)
    attributes: list[str | AttributeIn] = Field(default_factory=list, max_length=50)
    filters: list[ConditionIn | GroupIn] = Field(default_factory=list, max_length=100)
    order_by: list[OrderIn] = Field(default_factory=list, max_length=50)
    limit: int = Field(q.DEFAULT_LIMIT, description=f"rows to return, 0-{q.MAX_LIMIT:,}")
    offset: int = Field(0, description="rows to skip")
    explain: bool = Field(False, description="return the plan and SQL without running it")
    use_aggregates: bool = Field(True, description="false: answer from the base tables")

    def query(self) -> q.Query:
        attributes = tuple(
            a.ref() if isinstance(a, AttributeIn) else q.AttributeRef(a) for a in self.attributes
        )
        filters = [_filter(f) for f in self.filters]
        combined = None
        if filters:
            combined = filters[0] if len(filters) == 1 else q.Logical("and", tuple(filters))
        return q.Query(
            metrics=tuple(self.metrics),
            attributes=attributes,
            filter=combined,
            order_by=tuple(q.OrderBy(o.member, o.direction == "desc") for o in self.order_by),
            limit=self.limit,
            offset=self.offset,
        )


class ColumnOut(BaseModel):
    name: str
    type: str


class ServedByOut(BaseModel):
    fact: str = Field(description="the fact dataset of this part of the query")
    kind: Literal["aggregate", "base"]
    definition_id: str | None = None
    definition: str | None = None
    instance_id: str | None = None
    table: str | None = None


class QueryOut(BaseModel):
    columns: list[ColumnOut]
    rows: list[list[Any]]
    served_by: list[ServedByOut]
    served_from: Literal["aggregate", "base", "mixed"]
    sql: str
    duration_ms: float
    planning_ms: float
    rows_returned: int
    query_id: str | None = None
    explain: bool = False


class QueryLogOut(BaseModel):
    id: str
    organization_id: str
    project_id: str
    cube_id: str
    user: str
    created_at: str
    metrics: list[str]
    attributes: list[str]
    filter_attributes: list[str]
    grain: list[dict[str, Any]]
    served_by: str
    duration_ms: float
    rows: int
    error: str | None = None
