"""CERN Keycloak twin: api-access client credentials, device flow, token exchange, refresh,
and the token endpoint's grants of the browser login (keycloak_login.py: authorization code,
a user session's refresh) and of Authorization Services (keycloak_authz.py: uma-ticket).

Paths under /auth/realms/cern/ as on auth.cern.ch (docs/reference/dials.md §3,
docs/reference/oms.md §1). The
device flow auto-approves: the first poll with a device code returns tokens, so cmsdials'
device Credentials work in tests without a human. Errors follow Keycloak's OAuth2 bodies:
{"error": ..., "error_description": ...}.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import keycloak_authz, keycloak_login
from .httputil import base_url, json_response
from .keycloak_login import bad_client, confidential_client, oauth_error
from .state import KNOWN_AUDIENCES, PUBLIC_CLIENTS, EmulatorState
from .tokens import TokenError

REALM = "/auth/realms/cern"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"


def routes(state: EmulatorState) -> list[Route]:
    s = state.settings

    def access(audience: str, azp: str, subject: str, *, refresh: bool) -> dict:
        body = {
            "access_token": state.signer.issue(audience=audience, azp=azp, subject=subject,
                                               ttl=s.token_ttl, roles=("cms-dqm-users",)),
            "expires_in": s.token_ttl,
            "refresh_expires_in": s.refresh_ttl if refresh else 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        }
        if refresh:
            body["refresh_token"] = state.signer.issue(
                audience=azp, azp=azp, subject=subject, ttl=s.refresh_ttl, kind="Refresh")
            body["session_state"] = secrets.token_hex(16)
        return body

    def confidential_ok(form) -> str | None:
        return confidential_client(s, form)

    async def api_access_token(request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", "Unsupported grant_type")
        client_id = confidential_ok(form)
        if client_id is None:
            return bad_client()
        audience = form.get("audience") or client_id
        if audience != client_id and audience not in KNOWN_AUDIENCES:
            return oauth_error(400, "invalid_request", f"Audience not found: {audience}")
        return json_response(access(audience, client_id, f"service-account-{client_id}",
                                    refresh=False))

    async def device_auth(request: Request) -> Response:
        form = await request.form()
        client_id = form.get("client_id", "")
        if client_id not in PUBLIC_CLIENTS:
            return bad_client()
        code = secrets.token_urlsafe(32)
        user_code = secrets.token_hex(4).upper()
        state.device_codes[code] = client_id
        uri = f"{base_url(request)}/auth/realms/cern/device"
        return json_response({
            "device_code": code, "user_code": f"{user_code[:4]}-{user_code[4:]}",
            "verification_uri": uri, "verification_uri_complete": f"{uri}?user_code={user_code}",
            "expires_in": 600, "interval": 5,
        })

    async def token(request: Request) -> Response:
        form = await request.form()
        grant = form.get("grant_type")
        client_id = form.get("client_id", "")
        if grant == DEVICE_GRANT:
            owner = state.device_codes.pop(form.get("device_code", ""), None)
            if owner is None or owner != client_id:
                return oauth_error(400, "invalid_grant", "Device code not valid")
            return json_response(access(client_id, client_id, "emulated-user", refresh=True))
        if grant == "refresh_token":
            try:
                claims = state.signer.verify(form.get("refresh_token", ""), client_id,
                                             kind="Refresh")
            except TokenError:
                return oauth_error(400, "invalid_grant", "Invalid refresh token")
            if "sid" in claims:  # a browser login's session (keycloak_login.py)
                if confidential_ok(form) is None:
                    return bad_client()
                return keycloak_login.refresh_session(state, claims, client_id)
            return json_response(access(client_id, client_id, claims["sub"], refresh=True))
        if grant == "authorization_code":
            if confidential_ok(form) is None:
                return bad_client()
            return keycloak_login.code_grant(state, form, client_id)
        if grant == keycloak_authz.UMA_GRANT:
            return await keycloak_authz.uma_grant(state, request, form)
        if grant == EXCHANGE_GRANT:
            try:
                claims = state.signer.verify(form.get("subject_token", ""), None)
            except TokenError:
                return oauth_error(400, "invalid_token", "Invalid token")
            audience = form.get("audience", "")
            if audience not in KNOWN_AUDIENCES:
                return oauth_error(400, "invalid_client", "Audience not found")
            return json_response(access(audience, client_id, claims["sub"], refresh=False))
        if grant == "client_credentials":
            cid = confidential_ok(form)
            if cid is None:
                return bad_client()
            return json_response(access(cid, cid, f"service-account-{cid}", refresh=False))
        return oauth_error(400, "unsupported_grant_type", "Unsupported grant_type")

    return [
        *keycloak_login.routes(state),
        Route(REALM + "/api-access/token", api_access_token, methods=["POST"]),
        Route(REALM + "/protocol/openid-connect/auth/device", device_auth, methods=["POST"]),
        Route(REALM + "/protocol/openid-connect/token", token, methods=["POST"]),
    ]
