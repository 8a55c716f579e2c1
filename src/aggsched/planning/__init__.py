"""What to build and the SQL for it. Pure: definition specs in, plans and SQL out.

`spec` is the stored, warehouse-independent form of an aggregate definition (made from the
SML model at publish time); `naming` fixes table and column names; `partials` says how each
calculation method is stored and re-aggregated; `lattice` picks finer aggregates to build
from; `sqlgen` renders sqlglot expressions for a dialect; `plan` orders a batch.
"""
