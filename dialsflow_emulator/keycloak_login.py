"""CERN Keycloak twin, browser side: OpenID discovery, the login page of the
authorization-code flow, the code and refresh exchanges of a user session, userinfo, logout.

What Airflow's Keycloak auth manager (apache/airflow providers/keycloak, auth_manager/routes/
login.py) drives through python-keycloak's KeycloakOpenID: `well_known()` then `auth_url()`
sends the browser to the authorization endpoint; the login form posts the CERN account's
credentials; Keycloak redirects to the client's callback with `code` and `state`; the
callback exchanges the code (confidential client: id and secret) for access, refresh and ID
tokens and reads `userinfo`. Codes are single-use and live `Settings.code_ttl` seconds;
redirect URIs must match the client's registered ones (`--login-client`). A logout ends the
SSO session: its refresh tokens, userinfo and authorization decisions stop working.

Tokens carry the user's application roles as CERN SSO puts them: `cern_roles` and
`resource_access.<client>.roles` (auth.docs.cern.ch, "Role based permissions").
"""

from __future__ import annotations

import html
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .httputil import base_url, bearer_token, json_response
from .state import EmulatorState, Settings
from .tokens import TokenError

REALM = "/auth/realms/cern"
OIDC = REALM + "/protocol/openid-connect"
LOGIN_ACTION = REALM + "/login-actions/authenticate"
#: How long a login page stays usable (Keycloak's default "Login timeout": 30 minutes).
LOGIN_PAGE_TTL = 1800


def oauth_error(status: int, error: str, description: str) -> Response:
    """Keycloak's OAuth2 error body."""
    return json_response({"error": error, "error_description": description}, status)


def bad_client() -> Response:
    """A confidential client with a wrong secret, or an unknown client."""
    return oauth_error(401, "invalid_client", "Invalid client or Invalid client credentials")


def confidential_client(settings: Settings, form: Any) -> str | None:
    """The client id when the form's client_id and client_secret match a registered
    confidential client."""
    client_id = str(form.get("client_id", ""))
    secret = form.get("client_secret")
    if client_id not in settings.clients or secret != settings.clients[client_id]:
        return None
    return client_id


def error_page(message: str, status: int = 400) -> Response:
    """Keycloak shows the browser an error page, not JSON, when it cannot trust the client
    or its redirect URI (it must not redirect anywhere then)."""
    return HTMLResponse(f"<!DOCTYPE html><html><head><title>Sign in to CERN</title></head>"
                        f"<body><div id=\"kc-error-message\"><p class=\"instruction\">"
                        f"{html.escape(message)}</p></div></body></html>", status)


def redirect_allowed(uri: str, allowed: tuple[str, ...]) -> bool:
    """Keycloak's valid-redirect-URI match: exact, or a prefix when the pattern ends in *."""
    return any(uri.startswith(p[:-1]) if p.endswith("*") else uri == p for p in allowed)


def _login_page(action: str, client_id: str, error: str = "") -> HTMLResponse:
    message = (f'<span id="input-error" class="kc-feedback-text">{html.escape(error)}</span>'
               if error else "")
    body = (
        "<!DOCTYPE html><html><head><title>Sign in to CERN</title></head><body>"
        f"<h1 id=\"kc-page-title\">Sign in with a CERN account</h1>{message}"
        f'<form id="kc-form-login" action="{html.escape(action)}" method="post">'
        '<input id="username" name="username" type="text" autofocus>'
        '<input id="password" name="password" type="password">'
        '<input type="hidden" id="id-hidden-input" name="credentialId">'
        '<input name="login" id="kc-login" type="submit" value="Sign In">'
        f"</form><p>Application: {html.escape(client_id)}</p></body></html>")
    return HTMLResponse(body, 200)


def user_claims(state: EmulatorState, token: str, audience: str | None = None) -> dict[str, Any]:
    """The claims of a user's access token whose SSO session is still live, or TokenError."""
    claims = state.signer.verify(token, audience)
    sid = claims.get("sid")
    if sid is not None and state.sessions.get(sid) != claims.get("sub"):
        raise TokenError("invalid_token", "User session not found")
    return claims


def session_tokens(state: EmulatorState, client_id: str, username: str, sid: str, *,
                   scope: str = "openid", nonce: str = "") -> dict[str, Any]:
    """What the token endpoint answers for a user session: access, refresh and (scope
    `openid`) ID token, the roles as CERN SSO puts them."""
    s = state.settings
    user = s.users[username]
    identity = {"preferred_username": username, "cern_upn": username, "name": username,
                "email": f"{username}@cern.ch", "sid": sid, "session_state": sid,
                "resource_access": {client_id: {"roles": list(user.roles)}},
                "scope": "openid profile email"}
    issue = state.signer.issue
    body = {
        "access_token": issue(audience=client_id, azp=client_id, subject=username,
                              ttl=s.token_ttl, roles=user.roles, claims=identity),
        "expires_in": s.token_ttl,
        "refresh_expires_in": s.refresh_ttl,
        "refresh_token": issue(audience=client_id, azp=client_id, subject=username,
                               ttl=s.refresh_ttl, kind="Refresh",
                               claims={"sid": sid, "scope": scope}),
        "token_type": "Bearer",
        "not-before-policy": 0,
        "session_state": sid,
        "scope": "openid profile email",
    }
    if "openid" in scope.split():
        body["id_token"] = issue(audience=client_id, azp=client_id, subject=username,
                                 ttl=s.token_ttl, kind="ID", roles=user.roles,
                                 claims={**identity, **({"nonce": nonce} if nonce else {})})
    return body


def code_grant(state: EmulatorState, form: Any, client_id: str) -> Response:
    """grant_type=authorization_code for an authenticated confidential client."""
    grant = state.codes.pop(form.get("code", ""), None)  # single use, whatever follows
    if grant is None or grant["client_id"] != client_id:
        return oauth_error(400, "invalid_grant", "Code not valid")
    if grant["expires"] < time.time():
        return oauth_error(400, "invalid_grant", "Code is expired")
    if form.get("redirect_uri", "") != grant["redirect_uri"]:
        return oauth_error(400, "invalid_grant", "Incorrect redirect_uri")
    if state.sessions.get(grant["sid"]) != grant["username"]:
        return oauth_error(400, "invalid_grant", "Session not active")
    return json_response(session_tokens(state, client_id, grant["username"], grant["sid"],
                                        scope=grant["scope"], nonce=grant["nonce"]))


def refresh_session(state: EmulatorState, claims: dict[str, Any], client_id: str) -> Response:
    """A refresh token of a user session: new tokens while the session lives."""
    sid = claims["sid"]
    username = state.sessions.get(sid)
    if username != claims["sub"] or username not in state.settings.users:
        return oauth_error(400, "invalid_grant", "Session not active")
    return json_response(session_tokens(state, client_id, username, sid,
                                        scope=claims.get("scope", "openid")))


def _forget_expired(state: EmulatorState) -> None:
    """Drop login pages and codes nobody can use any more (a long-running emulator)."""
    now = time.time()
    for store in (state.login_pages, state.codes):
        for key in [k for k, v in store.items() if v["expires"] < now]:
            store.pop(key, None)


def routes(state: EmulatorState) -> list[Route]:
    s = state.settings

    async def discovery(request: Request) -> Response:
        base = base_url(request) + REALM
        return json_response({
            "issuer": base,
            "authorization_endpoint": f"{base}/protocol/openid-connect/auth",
            "token_endpoint": f"{base}/protocol/openid-connect/token",
            "introspection_endpoint": f"{base}/protocol/openid-connect/token/introspect",
            "userinfo_endpoint": f"{base}/protocol/openid-connect/userinfo",
            "end_session_endpoint": f"{base}/protocol/openid-connect/logout",
            "jwks_uri": f"{base}/protocol/openid-connect/certs",
            "device_authorization_endpoint": f"{base}/protocol/openid-connect/auth/device",
            "grant_types_supported": [
                "authorization_code", "refresh_token", "client_credentials",
                "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "urn:ietf:params:oauth:grant-type:uma-ticket"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["HS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "scopes_supported": ["openid", "profile", "email"],
        })

    async def certs(request: Request) -> Response:
        # The twin signs with a symmetric key (tokens.py), which is never published: a
        # client verifying tokens against this key set fails, as for an unknown key.
        return json_response({"keys": []})

    async def authorize(request: Request) -> Response:
        q = request.query_params
        client_id = q.get("client_id", "")
        if client_id not in s.clients:
            return error_page("Client not found.")
        redirect_uri = q.get("redirect_uri", "")
        if not redirect_allowed(redirect_uri, s.login_clients.get(client_id, ())):
            return error_page("Invalid parameter: redirect_uri")
        if q.get("response_type") != "code":
            return RedirectResponse(redirect_uri + "?" + urlencode({
                "error": "unsupported_response_type",
                "error_description": "Client is not allowed to initiate browser login with "
                                     "given response_type.", "state": q.get("state", "")}),
                status_code=302)
        _forget_expired(state)
        tab_id = secrets.token_urlsafe(8)
        state.login_pages[tab_id] = {
            "client_id": client_id, "redirect_uri": redirect_uri, "state": q.get("state", ""),
            "nonce": q.get("nonce", ""), "scope": q.get("scope", ""),
            "expires": time.time() + LOGIN_PAGE_TTL}
        return _login_page(_action(request, tab_id, client_id), client_id)

    def _action(request: Request, tab_id: str, client_id: str) -> str:
        return (f"{base_url(request)}{LOGIN_ACTION}?"
                + urlencode({"session_code": secrets.token_urlsafe(16),
                             "execution": "emulator-login", "client_id": client_id,
                             "tab_id": tab_id}))

    async def authenticate(request: Request) -> Response:
        tab_id = request.query_params.get("tab_id", "")
        pending = state.login_pages.get(tab_id)
        if pending is None or pending["expires"] < time.time():
            state.login_pages.pop(tab_id, None)
            return error_page("Your login attempt timed out. Login will start from the "
                              "beginning.")
        form = await request.form()
        username = str(form.get("username", ""))
        user = s.users.get(username)
        if user is None or not secrets.compare_digest(str(form.get("password", "")),
                                                      user.password):
            return _login_page(_action(request, tab_id, pending["client_id"]),
                               pending["client_id"], "Invalid username or password.")
        del state.login_pages[tab_id]
        sid = secrets.token_hex(16)
        state.sessions[sid] = username
        code = f"{secrets.token_urlsafe(24)}.{sid}.{secrets.token_hex(8)}"
        state.codes[code] = {"client_id": pending["client_id"], "username": username,
                             "sid": sid, "redirect_uri": pending["redirect_uri"],
                             "nonce": pending["nonce"], "scope": pending["scope"],
                             "expires": time.time() + s.code_ttl}
        params = {"state": pending["state"], "session_state": sid,
                  "iss": base_url(request) + REALM, "code": code}
        return RedirectResponse(pending["redirect_uri"] + "?" + urlencode(params),
                                status_code=302)

    async def userinfo(request: Request) -> Response:
        token = bearer_token(request)
        try:
            claims = user_claims(state, token or "")
        except TokenError:
            return json_response(
                {"error": "invalid_token", "error_description": "Token verification failed"},
                401, headers={"WWW-Authenticate": 'Bearer realm="cern", error="invalid_token", '
                                                  'error_description="Token verification '
                                                  'failed"'})
        keys = ("sub", "preferred_username", "cern_upn", "name", "email", "cern_roles",
                "resource_access")
        return json_response({k: claims[k] for k in keys if k in claims})

    async def logout(request: Request) -> Response:
        if request.method == "POST":  # back-channel: python-keycloak's logout(refresh_token)
            form = await request.form()
            client_id = confidential_client(s, form)
            if client_id is None:
                return bad_client()
            try:
                claims = state.signer.verify(str(form.get("refresh_token", "")), client_id,
                                             kind="Refresh")
            except TokenError:
                return oauth_error(400, "invalid_grant", "Invalid refresh token")
            state.sessions.pop(claims.get("sid", ""), None)
            return Response(status_code=204)
        q = request.query_params
        hint = q.get("id_token_hint")
        target = q.get("post_logout_redirect_uri")
        client_id = None
        if hint:
            try:
                claims = state.signer.verify(hint, None, kind="ID")
            except TokenError:
                return error_page("Invalid parameter: id_token_hint")
            client_id = claims["aud"]
            state.sessions.pop(claims.get("sid", ""), None)
        if target is None:
            return HTMLResponse("<!DOCTYPE html><html><body><p>You are logged out</p>"
                                "</body></html>", 200)
        # Keycloak: post-logout redirect URIs default to the client's redirect URIs ("+"),
        # and need the client (from id_token_hint or client_id) to check them against.
        client_id = client_id or q.get("client_id")
        if client_id is None or not redirect_allowed(target, s.login_clients.get(client_id,
                                                                                  ())):
            return error_page("Invalid redirect uri")
        return RedirectResponse(target, status_code=302)

    return [
        Route(REALM + "/.well-known/openid-configuration", discovery),
        Route(OIDC + "/certs", certs),
        Route(OIDC + "/auth", authorize),
        Route(LOGIN_ACTION, authenticate, methods=["POST"]),
        Route(OIDC + "/userinfo", userinfo, methods=["GET", "POST"]),
        Route(OIDC + "/logout", logout, methods=["GET", "POST"]),
    ]
