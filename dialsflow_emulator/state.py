"""The emulator's mutable state: the world, its clock, registered clients, faults, counters."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .tokens import TokenSigner
from .world.basics import utc
from .world.model import World

# Production identifiers the real clients send by default (cmsdials auth/client.py,
# omsapi OMSAPIOAuth), accepted as-is so that only base URLs change in tests.
DIALS_PUBLIC_CLIENT = "cms-dials-prod-public-app"
DIALS_AUDIENCE = "cms-dials-prod-confidential-app"
OMS_AUDIENCE = "cmsoms-prod"
OMS_PUBLIC_CLIENT = "cmsoms-prod-public"
KNOWN_AUDIENCES = frozenset({
    DIALS_AUDIENCE, "cms-dials-dev-confidential-app", OMS_AUDIENCE, "cmsoms-int-0185",
    "cmsoms-int-0184",
})
PUBLIC_CLIENTS = frozenset({DIALS_PUBLIC_CLIENT, "cms-dials-dev-public-app", OMS_PUBLIC_CLIENT})

#: The emulator's registered confidential application (a test double, not a credential).
DEFAULT_CLIENT_ID = "dialsflow-emulator"
DEFAULT_CLIENT_SECRET = "emulator-secret-not-for-production"  # noqa: S105


@dataclass(frozen=True)
class User:
    """A CERN account of the login twin: its password and the application roles the CERN
    Application Portal maps to it (through its e-groups), as they reach the token."""

    password: str
    roles: tuple[str, ...]


#: Test accounts of the login twin (obvious test values; `--user` replaces them).
DEFAULT_USERS = {
    "operator": User("operator-pw", ("airflow-operator",)),
    "viewer": User("viewer-pw", ("airflow-viewer",)),
}


@dataclass
class Settings:
    profile: str = "demo"
    seed: int = 1
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("502", "503", "504", "reset", "truncate")
    fault_max_consecutive: int = 3
    retry_after_s: int = 1
    token_ttl: int = 1200
    refresh_ttl: int = 36000
    # DIALS' serving capacity (dials/server.py, docs/emulator.md "DIALS server model")
    server_workers: int = 15  # 5 pods x 3 sync gunicorn workers
    gateway_timeout_s: float = 30.0  # nginx proxy_read_timeout and gunicorn --timeout
    server_ms_per_mb: float = 0.0  # rendering cost per MB of JSON (0: instant, for tests)
    server_base_ms: float = 0.0  # cost of any request (auth, routing, queries)
    gzip: bool = True  # nginx gzip of JSON and HTML answers
    clients: dict[str, str] = field(
        default_factory=lambda: {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET})
    # the browser login (keycloak_login.py): accounts, and the confidential clients that may
    # use it, each with its valid redirect URIs (a trailing * matches any rest) and the
    # Airflow authorization settings (keycloak_authz.py)
    users: dict[str, User] = field(default_factory=lambda: dict(DEFAULT_USERS))
    login_clients: dict[str, tuple[str, ...]] = field(default_factory=dict)
    code_ttl: int = 60  # Keycloak's default code lifespan (realm "Client login timeout")


class EmulatorState:
    """Shared by every route. The clock can be moved while the server runs."""

    def __init__(self, world: World, settings: Settings, issuer: str,
                 now: datetime | None = None) -> None:
        self.world = world
        self.settings = settings
        self.signer = TokenSigner.for_seed(settings.seed, issuer)
        self._now = now or world.default_now
        self._lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.device_codes: dict[str, str] = {}  # device_code -> client_id
        # browser login: pending login pages, issued codes, live SSO sessions
        self.login_pages: dict[str, dict[str, Any]] = {}  # tab_id -> authorization request
        self.codes: dict[str, dict[str, Any]] = {}  # code -> what its exchange issues
        self.sessions: dict[str, str] = {}  # sid -> username
        self.failing_me: str | None = None  # regex: th1/th2 rows of matching MEs answer 500

    @property
    def now(self) -> datetime:
        return self._now

    def set_now(self, value: datetime) -> None:
        self._now = value

    def now_for(self, headers) -> datetime:
        """The world clock for one request: `X-Emulator-Now` overrides the server clock."""
        override = headers.get("x-emulator-now")
        return utc(override) if override else self._now

    def count(self, path: str) -> None:
        with self._lock:
            self.requests[path] += 1
