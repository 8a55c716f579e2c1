"""What every console request shares: the console's state on the app, the signed-in
visitor (checked by the API on every request), rendering with CSRF and flash messages,
redirects and error pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from aggsched.config import Settings
from aggsched.store import Store
from aggsched.store.models import Role
from aggsched.web import format as fmt
from aggsched.web.apiclient import ApiFailure, ConsoleApi, segment
from aggsched.web.oidc import OidcClient
from aggsched.web.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    FLASH_COOKIE,
    FLASH_SECONDS,
    SESSION_COOKIE,
    CookiePolicy,
    Csrf,
    SessionData,
    Signer,
    decode_flash,
    encode_flash,
)

TEMPLATES = Path(__file__).parent / "templates"
CHANGERS = frozenset({Role.ADMIN.value, Role.AGGREGATES_MANAGE.value})


@dataclass
class ConsoleState:
    """The console's collaborators, kept on ``app.state.console``."""

    settings: Settings
    store: Store
    templates: Jinja2Templates
    cookies: CookiePolicy
    csrf: Csrf
    sealer: Signer
    oidc: OidcClient | None = None  # when console OIDC is configured
    headers: dict[str, str] = field(default_factory=dict)  # on every page (CSP, framing)


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    fmt.install(templates.env)
    return templates


def console(request: Request) -> ConsoleState:
    return request.app.state.console  # type: ignore[no-any-return]


@dataclass
class Visitor:
    """The signed-in caller of this request and an API client acting as them."""

    session: SessionData
    username: str
    roles: list[str]
    api: ConsoleApi

    @property
    def org(self) -> str:
        return self.session.org

    @property
    def org_path(self) -> str:
        """``/org/{orgId}`` as the API spells it."""
        return f"/org/{segment(self.org)}"

    @property
    def can_change(self) -> bool:
        """Whether the console offers forms that change things (the API decides anyway)."""
        return bool(CHANGERS & set(self.roles))


class LoginRequired(Exception):
    """No valid session: the browser is sent to the sign-in page."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "sign in")
        self.reason = reason


async def visitor(request: Request) -> AsyncIterator[Visitor]:
    """The signed-in visitor; ``LoginRequired`` when the cookie is missing or the API no
    longer accepts its token (expired, user removed, role revoked)."""
    session = SessionData.decode(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequired()
    api = ConsoleApi(request.app, session.token)
    try:
        me = await api.get(f"/org/{segment(session.org)}/whoami")
    except ApiFailure as failure:
        await api.aclose()
        if failure.status in (401, 403, 404):
            raise LoginRequired(f"Your session ended: {failure.message}") from failure
        raise
    found = Visitor(session, str(me["username"]), list(me["roles"]), api)
    request.state.visitor = found
    try:
        yield found
    finally:
        await api.aclose()


def _nonce(request: Request) -> tuple[str, bool]:
    """This browser's CSRF nonce, and whether it is new (to be set as a cookie)."""
    given = getattr(request.state, "csrf_nonce", None) or request.cookies.get(CSRF_COOKIE)
    if given and 20 <= len(given) <= 100:
        return given, False
    fresh = Csrf.new_nonce()
    request.state.csrf_nonce = fresh
    return fresh, True


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    visitor: Visitor | None = None,
) -> HTMLResponse:
    """A page: the template with the visitor, a CSRF token for its forms and the flash
    message left by the previous request."""
    state = console(request)
    nonce, fresh = _nonce(request)
    who = visitor or getattr(request.state, "visitor", None)
    values = {
        "visitor": who,
        "csrf_field": CSRF_FIELD,
        "csrf_token": state.csrf.token_for(nonce),
        "flash": decode_flash(request.cookies.get(FLASH_COOKIE)),
        "oidc_enabled": state.oidc is not None,
        **(context or {}),
    }
    response = state.templates.TemplateResponse(request, template, values, status_code=status)
    if fresh:
        state.cookies.set(response, request, CSRF_COOKIE, nonce)
    if FLASH_COOKIE in request.cookies:
        state.cookies.clear(response, request, FLASH_COOKIE)
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(state.headers)
    return response


def redirect(
    request: Request,
    url: str,
    flash: tuple[Literal["ok", "error"], str] | None = None,
) -> RedirectResponse:
    """303 to ``url`` (a GET), with a one-time message for the next page."""
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        console(request).cookies.set(
            response, request, FLASH_COOKIE, encode_flash(*flash), max_age=FLASH_SECONDS
        )
    return response


def error_page(
    request: Request, status: int, title: str, message: str, *, back: str | None = None
) -> HTMLResponse:
    """A page saying what went wrong (and where to go back to), with ``status``."""
    context = {"title": title, "message": message, "back": back, "status": status}
    return render(request, "error.html", context, status=status)


async def checked_form(request: Request) -> FormData:
    """The POSTed form, after the CSRF check (``CsrfRefused`` when it fails)."""
    form = await request.form()
    console(request).csrf.check(request, form.get(CSRF_FIELD))
    return form


def login_url(request: Request) -> str:
    """The sign-in page, returning to this page afterwards (GETs only)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET" or target == "/":
        return "/login"
    return "/login?" + urlencode({"next": target})
