"""Sign-in (local users and OIDC) and sign-out."""

from __future__ import annotations

import time

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from aggsched.web.apiclient import ApiFailure, ConsoleApi, segment
from aggsched.web.context import checked_form, console, error_page, redirect, render
from aggsched.web.oidc import FLOW_SECONDS, OidcError
from aggsched.web.session import SESSION_COOKIE, SessionData, safe_next

router = APIRouter(include_in_schema=False)
OIDC_COOKIE = "aggsched_oidc"
FALLBACK_SESSION_SECONDS = 3600


def _lifetime(token: str, default: int) -> int:
    """Seconds until the token expires (the cookie lives as long), read from its
    ``exp`` claim; the API checks the signature on every call."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        left = int(claims["exp"]) - int(time.time())
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return default
    return max(60, left)


def _signed_in(request: Request, session: SessionData, target: str) -> Response:
    state = console(request)
    response = redirect(request, safe_next(target))
    lifetime = _lifetime(session.token, state.settings.jwt_lifetime_seconds)
    state.cookies.set(response, request, SESSION_COOKIE, session.encode(), max_age=lifetime)
    return response


def _login_page(
    request: Request, *, status: int = 200, error: str | None = None, org: str = "default",
    username: str = "", next_path: str = "/",
) -> Response:  # fmt: skip
    context = {"error": error, "org": org, "username": username, "next": safe_next(next_path)}
    return render(request, "login.html", context, status=status)


@router.get("/login")
async def login_form(request: Request, next: str = "/", org: str = "default") -> Response:
    return _login_page(request, org=org[:64], next_path=next)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await checked_form(request)
    org = str(form.get("org") or "").strip()
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    target = str(form.get("next") or "/")
    missing = [name for name, value in (("organization", org), ("user", username),
                                        ("password", password)) if not value]  # fmt: skip
    if missing:
        return _login_page(request, status=400, error=f"Enter the {' and '.join(missing)}.",
                           org=org, username=username, next_path=target)  # fmt: skip
    async with ConsoleApi(request.app) as api:
        try:
            token = await api.sign_in(org, username, password)
        except ApiFailure as failure:
            message = {401: "Wrong user name or password.",
                       404: f"You have no role in organization {org!r}."}.get(
                failure.status, failure.message)  # fmt: skip
            return _login_page(request, status=failure.status, error=message, org=org,
                               username=username, next_path=target)  # fmt: skip
    return _signed_in(request, SessionData(org, token), target)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await checked_form(request)
    response = redirect(request, "/login", ("ok", "You are signed out."))
    console(request).cookies.clear(response, request, SESSION_COOKIE)
    return response


@router.get("/oidc/login")
async def oidc_login(request: Request, org: str = "default", next: str = "/") -> Response:
    state = console(request)
    if state.oidc is None:
        return error_page(request, 404, "OIDC sign-in is off",
                          "This server has no OIDC client configured.")  # fmt: skip
    try:
        started = await state.oidc.start(org.strip()[:64] or "default", safe_next(next),
                                         str(request.base_url))  # fmt: skip
    except OidcError as exc:
        return _login_page(request, status=502, error=str(exc), org=org)
    response = RedirectResponse(started.url, status_code=303)
    sealed = state.sealer.seal(started.remember, FLOW_SECONDS)
    state.cookies.set(response, request, OIDC_COOKIE, sealed, max_age=FLOW_SECONDS)
    return response


@router.get("/oidc/callback")
async def oidc_callback(
    request: Request, code: str = "", state: str = "", error: str = "",
    error_description: str = "",
) -> Response:  # fmt: skip
    shared = console(request)
    remembered = shared.sealer.unseal(request.cookies.get(OIDC_COOKIE))
    org = str(remembered.get("org", "default")) if remembered else "default"

    def refused(message: str, status: int = 400) -> Response:
        response = _login_page(request, status=status, error=message, org=org)
        shared.cookies.clear(response, request, OIDC_COOKIE)
        return response

    if shared.oidc is None:
        return refused("This server has no OIDC client configured.", 404)
    if remembered is None:
        return refused("The sign-in took too long or was not started here; try again.")
    if error:
        return refused(f"The identity provider refused the sign-in: {error_description or error}")
    if not code or state != remembered.get("state"):
        return refused("The identity provider's answer does not match this sign-in.")
    try:
        token, _principal = await shared.oidc.finish(code, remembered, str(request.base_url))
    except OidcError as exc:
        return refused(str(exc), 401)
    async with ConsoleApi(request.app, token) as api:
        try:
            await api.get(f"/org/{segment(org)}/whoami")
        except ApiFailure as failure:
            return refused(f"Signed in, but the API refuses you in {org!r}: {failure.message}", 403)
    response = _signed_in(request, SessionData(org, token, "oidc"), str(remembered.get("next")))
    shared.cookies.clear(response, request, OIDC_COOKIE)
    return response
