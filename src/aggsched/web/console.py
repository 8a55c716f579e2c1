"""Mounting the console on the API's FastAPI app: its routes (kept out of the OpenAPI
document), static files, error pages and shared state.

The console is added to the app ``api.create_app`` builds rather than built into it, so
imports point one way (web -> api) and the API alone stays available to embedders.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from aggsched.api import create_app as create_api_app
from aggsched.api.auth import load_or_create_key
from aggsched.config import Settings
from aggsched.store import Store
from aggsched.web.apiclient import ApiFailure
from aggsched.web.context import (
    ConsoleState,
    LoginRequired,
    console,
    error_page,
    login_url,
    make_templates,
    redirect,
)
from aggsched.web.oidc import OidcClient
from aggsched.web.routes import auth, builds, charts, cube, overview, queries
from aggsched.web.session import SESSION_COOKIE, CookiePolicy, Csrf, CsrfRefused, Signer

STATIC = Path(__file__).parent / "static"


def _security_headers(settings: Settings) -> dict[str, str]:
    """Only our own scripts and styles run; forms post here (or go to the OIDC issuer)."""
    form_action = "'self'"
    if settings.oidc_issuer and settings.console_oidc_client_id:
        issuer = urlsplit(settings.oidc_issuer)
        form_action += f" {issuer.scheme}://{issuer.netloc}"
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    )
    return {
        "Content-Security-Policy": policy, "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    }  # fmt: skip


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    flash = ("error", exc.reason) if exc.reason else None
    response = redirect(request, login_url(request), flash)  # type: ignore[arg-type]
    if SESSION_COOKIE in request.cookies:
        console(request).cookies.clear(response, request, SESSION_COOKIE)
    return response


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CsrfRefused)
    message = f"Nothing was changed: {exc.reason}. Reload the page and try again."
    return error_page(request, 403, "Form refused", message)


async def _api_failure(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiFailure)
    if exc.status == 401:
        return await _login_required(request, LoginRequired(f"Your session ended: {exc.message}"))
    title = {404: "Not found", 403: "Not allowed", 400: "Bad request"}.get(exc.status, "Error")
    return error_page(request, exc.status, title, exc.message, back="/")


def mount_console(app: FastAPI) -> FastAPI:
    """Add the console to an app made by ``aggsched.api.create_app``."""
    settings: Settings = app.state.settings
    key = load_or_create_key(settings)
    app.state.console = ConsoleState(
        settings=settings, store=app.state.store, templates=make_templates(),
        cookies=CookiePolicy(settings.console_secure_cookies),
        csrf=Csrf(Signer(key, "csrf")), sealer=Signer(key, "oidc-flow"),
        oidc=OidcClient.from_settings(settings, app.state.authenticator),
        headers=_security_headers(settings),
    )  # fmt: skip
    for module in (auth, overview, cube, builds, queries, charts):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(ApiFailure, _api_failure)
    return app


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The REST API with the console at ``/`` (unless ``console_enabled`` is off)."""
    app = create_api_app(settings, store)
    return mount_console(app) if settings.console_enabled else app
