"""Running things: publishing projects, queueing and running build batches, firing schedules.

The engine joins the pure layers (sml, cron, planning) to the I/O layers (store,
warehouse); the API, CLI and workers call it and never reach past it.
"""
