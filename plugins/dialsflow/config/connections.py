"""The four Airflow connections dialsflow reads, and what each field means.

One meaning everywhere: the CLI reads them from `AIRFLOW_CONN_<ID>` environment variables
(Airflow's JSON or URI form), the DAG from Airflow's connection store
(`dialsflow.airflow.connections`); both end here.

- dials_default: host = DIALS root (https://cmsdials-api.web.cern.ch/); login/password =
  Keycloak client id/secret; extra: workspace, auth (client_credentials | device),
  keycloak_url, realm, audience, verify, cache_dir (device-flow token cache).
- oms_default: host = OMS API root (https://cmsoms.cern.ch/agg/api); login/password = client
  id/secret of an application in oms-api-access; extra: token_url, audience,
  via (direct: omsapi | dials: DIALS' oms-proxy), verify.
- dbs_default: host = DBS reader (https://cmsweb.cern.ch:8443/dbs/prod/global/DBSReader);
  extra: cert, key (grid proxy: the same file for both), verify (CA bundle/dir or bool).
- caf_default: host = CAF area (https://cms-service-dqmdc.web.cern.ch/CAF/certification);
  extra: class (e.g. Collisions24), kind (golden | muon | dcs), verify.

Secrets live only in `password`; nothing here prints or logs them (see `__repr__`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from dialsflow.errors import ConnectionConfigError

CONN_IDS = ("dials_default", "oms_default", "dbs_default", "caf_default")

PRODUCTION_DIALS = "https://cmsdials-api.web.cern.ch/"
PRODUCTION_KEYCLOAK = "https://auth.cern.ch/auth/"
DIALS_AUDIENCE = "cms-dials-prod-confidential-app"
OMS_AUDIENCE = "cmsoms-prod"
CERT_KINDS = ("golden", "muon", "dcs")
#: DIALS' own default workspace (docs/reference/dials.md §1).
DEFAULT_WORKSPACE = "tracker"


@dataclass(frozen=True)
class ServiceConnection:
    """An Airflow connection reduced to the fields dialsflow uses."""

    conn_id: str
    host: str
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        secret = "***" if self.password else None
        return (f"ServiceConnection(conn_id={self.conn_id!r}, host={self.host!r}, "
                f"login={self.login!r}, password={secret!r}, extra={dict(self.extra)!r})")

    @property
    def base_url(self) -> str:
        return self.host

    def verify(self) -> bool | str:
        """requests' `verify`: True, False, or a CA bundle/directory path."""
        value = self.extra.get("verify", True)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value


def parse_connection(conn_id: str, value: str) -> ServiceConnection:
    """Parse Airflow's JSON form (`{"conn_type": ...}`) or URI form of a connection."""
    text = value.strip()
    if text.startswith("{"):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ConnectionConfigError(
                f"connection {conn_id!r}: invalid JSON ({exc}); expected Airflow's JSON form "
                '{"conn_type": "http", "host": "https://...", ...}') from None
        return from_fields(conn_id, data)
    return _from_uri(conn_id, text)


def from_fields(conn_id: str, data: Mapping[str, Any]) -> ServiceConnection:
    extra = data.get("extra") or {}
    if isinstance(extra, str):
        try:
            extra = orjson.loads(extra) if extra.strip() else {}
        except orjson.JSONDecodeError:
            raise ConnectionConfigError(
                f"connection {conn_id!r}: 'extra' is not valid JSON") from None
    if not isinstance(extra, Mapping):
        raise ConnectionConfigError(f"connection {conn_id!r}: 'extra' must be a JSON object")
    host = str(data.get("host") or "").strip()
    if not host:
        raise ConnectionConfigError(
            f"connection {conn_id!r}: 'host' is empty; set it to the service's full base URL")
    if "://" not in host:  # bare host name: rebuild the URL from port and schema
        port = data.get("port")
        scheme = extra.get("scheme") or ("http" if port not in (None, 443) else "https")
        host = f"{scheme}://{host}{f':{port}' if port else ''}/{data.get('schema') or ''}"
    return ServiceConnection(conn_id, host, data.get("login") or None,
                             data.get("password") or None, dict(extra))


def _from_uri(conn_id: str, uri: str) -> ServiceConnection:
    parts = urlsplit(uri)
    if not parts.scheme or not parts.hostname:
        raise ConnectionConfigError(
            f"connection {conn_id!r}: not a JSON object nor a URI like "
            "'http://login:password@host:port/path?workspace=tracker'")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    extra: dict[str, Any] = (orjson.loads(query.pop("__extra__")) if "__extra__" in query
                             else query)
    scheme = str(extra.pop("scheme", "https" if parts.port in (None, 443) else "http"))
    port = f":{parts.port}" if parts.port else ""
    host = f"{scheme}://{parts.hostname}{port}{unquote(parts.path) or '/'}"
    return ServiceConnection(conn_id, host, unquote(parts.username) if parts.username else None,
                             unquote(parts.password) if parts.password else None, extra)


def from_env(conn_id: str, environ: Mapping[str, str] | None = None) -> ServiceConnection | None:
    """The connection from `AIRFLOW_CONN_<CONN_ID>`, or None when it is not set."""
    env = os.environ if environ is None else environ
    value = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    return parse_connection(conn_id, value) if value else None


# ---- typed views: validated once, used by the clients --------------------------------------


@dataclass(frozen=True)
class DialsSettings:
    base_url: str
    workspace: str | None
    auth: str  # client_credentials | device
    keycloak_url: str
    realm: str
    audience: str
    client_id: str | None
    client_secret: str | None = field(repr=False)
    verify: bool | str
    cache_dir: str | None
    #: False: no dials_default connection, production DIALS with cached device credentials.
    configured: bool = True

    def for_workspace(self, workspace: str | None) -> DialsSettings:
        """These settings for `workspace`, else the connection's, else DIALS' default."""
        return replace(self, workspace=workspace or self.workspace or DEFAULT_WORKSPACE)

    @classmethod
    def from_connection(cls, conn: ServiceConnection | None) -> DialsSettings:
        """Production defaults when there is no connection: device flow with cached creds."""
        if conn is None:
            return cls(PRODUCTION_DIALS, None, "device", PRODUCTION_KEYCLOAK, "cern",
                       DIALS_AUDIENCE, None, None, True, None, configured=False)
        x = conn.extra
        auth = str(x.get("auth") or ("client_credentials" if conn.password else "device"))
        if auth not in ("client_credentials", "device"):
            raise ConnectionConfigError(
                f"connection {conn.conn_id!r}: extra.auth must be 'client_credentials' or "
                f"'device', not {auth!r}")
        if auth == "client_credentials" and not (conn.login and conn.password):
            raise ConnectionConfigError(
                f"connection {conn.conn_id!r}: client_credentials needs login (client id) and "
                "password (client secret)")
        base = conn.host if conn.host.endswith("/") else conn.host + "/"
        return cls(base, x.get("workspace"), auth, str(x.get("keycloak_url") or
                                                       PRODUCTION_KEYCLOAK),
                   str(x.get("realm") or "cern"), str(x.get("audience") or DIALS_AUDIENCE),
                   conn.login, conn.password, conn.verify(), x.get("cache_dir"))


@dataclass(frozen=True)
class OmsSettings:
    api_url: str
    token_url: str
    audience: str
    client_id: str
    client_secret: str = field(repr=False)
    via: str  # direct (omsapi) | dials (DIALS oms-proxy)
    verify: bool | str

    @classmethod
    def from_connection(cls, conn: ServiceConnection) -> OmsSettings:
        x = conn.extra
        via = str(x.get("via") or "direct")
        if via not in ("direct", "dials"):
            raise ConnectionConfigError(
                f"connection {conn.conn_id!r}: extra.via must be 'direct' or 'dials', not {via!r}")
        if via == "direct" and not (conn.login and conn.password):
            raise ConnectionConfigError(
                f"connection {conn.conn_id!r}: direct OMS access needs login (client id) and "
                "password (client secret) of an application in the oms-api-access group")
        token_url = str(x.get("token_url") or
                        PRODUCTION_KEYCLOAK + "realms/cern/api-access/token")
        return cls(conn.host.rstrip("/"), token_url, str(x.get("audience") or OMS_AUDIENCE),
                   conn.login or "", conn.password or "", via, conn.verify())


@dataclass(frozen=True)
class DbsSettings:
    url: str
    cert: tuple[str, str] | str | None
    verify: bool | str

    @classmethod
    def from_connection(cls, conn: ServiceConnection) -> DbsSettings:
        x = conn.extra
        cert, key = x.get("cert"), x.get("key")
        pair: tuple[str, str] | str | None = (cert, key) if cert and key else cert or None
        return cls(conn.host.rstrip("/"), pair, conn.verify())


@dataclass(frozen=True)
class CafSettings:
    url: str
    cert_class: str
    kind: str
    verify: bool | str

    @classmethod
    def from_connection(cls, conn: ServiceConnection) -> CafSettings:
        x = conn.extra
        kind = str(x.get("kind") or "golden")
        if kind not in CERT_KINDS:
            raise ConnectionConfigError(
                f"connection {conn.conn_id!r}: extra.kind must be one of {', '.join(CERT_KINDS)},"
                f" not {kind!r}")
        cert_class = x.get("class")
        if not cert_class:
            raise ConnectionConfigError(
                f"connection {conn.conn_id!r}: extra.class is required (e.g. 'Collisions24')")
        return cls(conn.host.rstrip("/"), str(cert_class), kind, conn.verify())
