"""`python -m aggsched.cli ...` runs the command line (used by tests and process managers)."""

from aggsched.cli import app

app()
