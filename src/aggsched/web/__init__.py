"""The web console: server-rendered pages for schedules, builds, aggregates and queries.

``create_app(settings, store)`` is the REST API with the console mounted at ``/``
(``aggsched serve`` runs it); ``mount_console(app)`` adds the console to an API app.
Pages call the REST API in-process as the signed-in user, so roles and every rule are
the API's own.
"""

from aggsched.web.console import create_app, mount_console

__all__ = ["create_app", "mount_console"]
