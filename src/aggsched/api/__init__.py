"""The REST API (FastAPI): AtScale's Aggregate Creation Schedule endpoints and more.

``create_app(settings, store)`` builds the app; ``aggsched serve`` runs it with uvicorn.
"""

from aggsched.api.app import create_app

__all__ = ["create_app"]
