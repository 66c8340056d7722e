"""CERN Keycloak twin, Authorization Services: the decision Airflow's Keycloak auth manager
asks for on every request (`grant_type=urn:ietf:params:oauth:grant-type:uma-ticket`).

The data below is the mirror of the authorization settings of the production Airflow client
on auth.cern.ch (docs/deployment.md, "Logging in with CERN accounts"): the resources and
scopes `airflow keycloak-auth-manager create-all` creates (apache/airflow providers/keycloak,
auth_manager/cli/commands.py, resources.py; one resource per Airflow menu item), two
client-role policies, one regex policy on a context attribute the auth manager pushes
(`claim_token`: `dag_entity`, `resource_id`), and three permissions. Change the production
client and this file together.

Evaluation follows Keycloak's Authorization Services: a permission applies to a resource and
scope when it names them (a permission without resources applies to every resource with one
of its scopes); its policies combine by its decision strategy; every applicable permission
must grant (the resource server's default UNANIMOUS strategy); none applicable is a denial
(enforcing mode). A request is granted when at least one requested permission is (Keycloak's
AuthorizationTokenService without an RPT); `response_mode=permissions` lists those granted.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from .httputil import bearer_token, json_response
from .keycloak_login import oauth_error, user_claims
from .state import EmulatorState
from .tokens import TokenError

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
JWT_CLAIMS = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_CLAIMS = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"  # noqa: S105

#: Client roles, defined in the CERN Application Portal and mapped to e-groups there.
VIEWER_ROLE = "airflow-viewer"
OPERATOR_ROLE = "airflow-operator"

_STANDARD = ("GET", "POST", "PUT", "DELETE", "LIST")
SCOPES = (*_STANDARD, "MENU")
#: Resource -> scopes, as `create-all` creates them: the auth manager's resources
#: (KeycloakResource) with the standard scopes, every menu item (Airflow's MenuItem) with MENU.
RESOURCES: dict[str, tuple[str, ...]] = {
    **{name: _STANDARD for name in (
        "AdminView", "Asset", "AssetAlias", "Backfill", "Configuration", "Connection", "Custom",
        "Dag", "Menu", "Pool", "Team", "Variable", "View")},
    **{name: ("MENU",) for name in (
        "Required Actions", "Assets", "Audit Log", "Config", "Connections", "Dags",
        "Deadlines", "Docs", "Jobs", "Plugins", "Pools", "Providers", "Variables", "XComs")},
}


@dataclass(frozen=True)
class Policy:
    """A client-role policy (`role`) or a regex policy on a context attribute (`attribute`,
    `pattern`: Keycloak 24+ "Target Context Attributes")."""

    name: str
    role: str | None = None
    attribute: str | None = None
    pattern: str | None = None

    def grants(self, roles: frozenset[str], context: dict[str, list[str]]) -> bool:
        if self.role is not None:
            return self.role in roles
        values = context.get(self.attribute or "", [])
        return bool(values) and all(re.fullmatch(self.pattern or "", v) for v in values)


@dataclass(frozen=True)
class Permission:
    name: str
    resources: tuple[str, ...]  # empty: every resource having one of `scopes`
    scopes: tuple[str, ...]
    policies: tuple[str, ...]
    strategy: str  # UNANIMOUS: every policy grants; AFFIRMATIVE: one does

    def applies(self, resource: str, scope: str) -> bool:
        return (not self.resources or resource in self.resources) and scope in self.scopes


POLICIES = {p.name: p for p in (
    Policy("airflow-viewer", role=VIEWER_ROLE),
    Policy("airflow-operator", role=OPERATOR_ROLE),
    # What trigger (POST dagRuns), clear (PUT clearTaskInstances, PUT a run's clear) and
    # backfill (POST backfills: POST on the Dag's RUN) ask; not pause, edit or delete a DAG.
    Policy("dag-runs-and-task-instances", attribute="dag_entity",
           pattern="^(RUN|TASK_INSTANCE)$"),
)}

PERMISSIONS = (
    # viewers and operators read everything: pages, DAGs, runs, task logs, custom views, menus
    Permission("ReadOnly", (), ("GET", "LIST", "MENU"), ("airflow-viewer", "airflow-operator"),
               "AFFIRMATIVE"),
    # operators trigger, clear and backfill: write DAG runs and task instances
    Permission("OperateRuns", ("Dag",), ("POST", "PUT", "DELETE"),
               ("airflow-operator", "dag-runs-and-task-instances"), "UNANIMOUS"),
    # the auth manager's deprecated backfill check (is_authorized_backfill)
    Permission("OperateBackfills", ("Backfill",), ("POST", "PUT", "DELETE"),
               ("airflow-operator",), "UNANIMOUS"),
)


def decide(resource: str, scope: str, roles: frozenset[str],
           context: dict[str, list[str]]) -> bool:
    """Keycloak's decision for one resource and scope (module docstring); a scope the
    resource lacks is never granted."""
    if scope not in RESOURCES.get(resource, ()):
        return False
    applicable = [p for p in PERMISSIONS if p.applies(resource, scope)]
    if not applicable:
        return False
    for permission in applicable:
        votes = [POLICIES[name].grants(roles, context) for name in permission.policies]
        if not (all(votes) if permission.strategy == "UNANIMOUS" else any(votes)):
            return False
    return True


def _pushed_claims(form: FormData) -> dict[str, list[str]] | None:
    """The `claim_token` (base64 JSON of string arrays), or None when it is malformed."""
    token = form.get("claim_token")
    if not token:
        return {}
    try:
        text = str(token)
        claims = orjson.loads(base64.urlsafe_b64decode(
            text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(claims, dict):
        return None
    return {str(k): [str(x) for x in (v if isinstance(v, list) else [v])]
            for k, v in claims.items()}


async def uma_grant(state: EmulatorState, request: Request, form: FormData) -> Response:
    """The token endpoint's uma-ticket grant: decision, permissions, or an RPT."""
    s = state.settings
    audience = str(form.get("audience", ""))
    if audience not in s.clients:
        return oauth_error(400, "invalid_request", "Unknown resource server id.")
    if audience not in s.login_clients:
        return oauth_error(400, "invalid_request", "Client does not support permissions")
    try:
        claims = user_claims(state, bearer_token(request) or "", audience)
    except TokenError:
        return oauth_error(400, "invalid_grant", "Invalid bearer token")
    fmt = form.get("claim_token_format")
    if fmt not in (None, JWT_CLAIMS, ID_TOKEN_CLAIMS):
        return oauth_error(400, "invalid_request", f"Claim token format [{fmt}] not supported")
    # only the JWT format carries pushed claims; the ID-token one reads the subject's token
    context = _pushed_claims(form) if fmt == JWT_CLAIMS else {}
    if context is None:
        return oauth_error(400, "invalid_request", "Invalid claims")
    mode = form.get("response_mode")
    if mode not in (None, "decision", "permissions"):
        return oauth_error(400, "invalid_request", "Invalid response_mode")
    requested: list[tuple[str, str]] = []
    for item in form.getlist("permission"):
        resource, _, scope = str(item).partition("#")
        if resource not in RESOURCES:
            return oauth_error(400, "invalid_resource",
                               f"Resource with id [{resource}] does not exist.")
        if scope not in SCOPES:  # the resource server's scopes; a resource's own are below
            return oauth_error(400, "invalid_scope",
                               f"One of the given scopes [{scope}] is invalid")
        requested.append((resource, scope))
    roles = frozenset(claims.get("resource_access", {}).get(audience, {}).get("roles", []))
    granted = [(r, sc) for r, sc in requested if decide(r, sc, roles, context)]
    if not granted:
        return oauth_error(403, "access_denied", "not_authorized")
    if mode == "decision":
        return json_response({"result": True})
    permissions = _by_resource(granted)
    if mode == "permissions":
        return json_response(permissions)
    rpt = state.signer.issue(audience=audience, azp=claims["azp"], subject=claims["sub"],
                             ttl=s.token_ttl, claims={"sid": claims.get("sid"),
                                                      "authorization": {
                                                          "permissions": permissions}})
    return json_response({"upgraded": False, "access_token": rpt, "expires_in": s.token_ttl,
                          "refresh_expires_in": 0, "token_type": "Bearer",
                          "not-before-policy": 0})


def _by_resource(granted: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Keycloak's permission list: one entry per resource with its granted scopes."""
    scopes: dict[str, list[str]] = {}
    for resource, scope in granted:
        scopes.setdefault(resource, []).append(scope)
    return [{"rsid": name, "rsname": name, "scopes": sc} for name, sc in scopes.items()]
