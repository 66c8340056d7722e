"""Who may call DIALS (X-CLIENT-SECRET or a Keycloak bearer token), and the auth app's views."""

from __future__ import annotations

import secrets

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..httputil import base_url, bearer_token, json_response
from ..state import DIALS_AUDIENCE, DIALS_PUBLIC_CLIENT, EmulatorState
from ..tokens import TokenError
from ..world.entities import DEFAULT_WORKSPACE, WORKSPACE_NAMES
from .context import Ctx, Handler


def _denied(code: str, detail: str) -> Response:
    """403, never 401: DRF's first authenticator (X-CLIENT-SECRET) sends no WWW-Authenticate."""
    return json_response({"detail": detail, "code": code}, 403)


def authenticate(state: EmulatorState, request: Request) -> Response | None:
    """None when the request may proceed, else the 403 DIALS answers (docs/reference/dials.md §1,
    §3)."""
    secret = request.headers.get("x-client-secret")
    if secret:  # checked first: a wrong secret fails even next to a valid bearer token
        if secret in state.settings.clients.values():
            return None
        return _denied("token_not_valid", "Token is invalid or expired")
    token = bearer_token(request)
    if token is None:
        return _denied("authorization_not_found", "Authorization header not found.")
    try:
        state.signer.verify(token, audience=DIALS_AUDIENCE)
    except TokenError as exc:
        return _denied(exc.code, exc.detail)
    return None


def new_device(state: EmulatorState) -> Handler:
    """DIALS' device-flow start (public in the OpenAPI file): a code the Keycloak twin redeems."""

    def handle(request: Request, ctx: Ctx) -> bytes:
        code = secrets.token_urlsafe(32)
        user_code = secrets.token_hex(4).upper()
        state.device_codes[code] = DIALS_PUBLIC_CLIENT
        uri = f"{base_url(request)}/auth/realms/cern/device?user_code={user_code}"
        return orjson.dumps({"device_code": code, "verification_uri_complete": uri,
                             "expires_in": 600})

    return handle


def workspaces(request: Request, ctx: Ctx) -> bytes:
    return orjson.dumps({"workspaces": list(WORKSPACE_NAMES)})


def default_workspace(request: Request, ctx: Ctx) -> bytes:
    return orjson.dumps({"workspace": DEFAULT_WORKSPACE})
