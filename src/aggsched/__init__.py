"""aggsched: an open aggregate-build scheduler for semantic layers.

It serves AtScale's "Aggregate Creation Schedule" REST API and keeps the aggregate tables
of SML cubes built in the warehouse, on Quartz cron schedules or on demand.
"""

__version__ = "0.1.0"
