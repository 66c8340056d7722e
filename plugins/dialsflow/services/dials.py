"""DIALS client: owns the connection, authentication, keep-alive session and retries.

Authentication is cmsdials' own (client credentials or cached device-flow credentials with
an AuthClient pointed at the connection's Keycloak), so tokens are issued and renewed exactly
as the official client does. Requests go through one pooled `requests.Session`, not
cmsdials' per-call sessions, and pages come back as raw bytes: parsing is the caller's
business (orjson, straight into Arrow).

Retries are services.http's (one budget for connection errors, cut bodies, retryable
statuses and token renewal); what an answer means for DIALS is `_classify`: a 200 is the
body, a 403 saying the token expired renews it and tries again, anything else is decided by
the shared retryable statuses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import requests

from dialsflow.config.connections import DialsSettings
from dialsflow.errors import ServiceError
from dialsflow.services import http
from dialsflow.services.http import Client, Outcome, Retrier, RetryPolicy

MAX_PAGE_SIZE = 500


class DialsClient(Client):
    """`DialsClient(settings).get("th2/", params)`; thread-safe, one pool per process."""

    def __init__(self, settings: DialsSettings, *, policy: RetryPolicy | None = None,
                 pool_size: int = 16, timeout: float = 60.0) -> None:
        self.settings = settings
        self.retrier = Retrier(policy or RetryPolicy())
        self.timeout = timeout
        self.api_url = settings.base_url + "api/v1/"
        self.pool_size = pool_size
        self._prefetcher: ThreadPoolExecutor | None = None
        # Each worker may have a page in flight ahead of the one it reads: twice the pool.
        self.session = http.pooled_session(pool=2 * pool_size, verify=settings.verify, hosts=2)
        self._refresh_lock = threading.Lock()
        self.creds = self._credentials()

    # ---- authentication ----------------------------------------------------------------

    def _credentials(self):
        # cmsdials imports pandas (for its to_pandas()) only where pandas is installed; the
        # production environment has none, so this import stays light there.
        from cmsdials.auth.client import AuthClient

        s = self.settings
        auth = AuthClient(keycloak_url=s.keycloak_url, realm=s.realm, audience=s.audience)
        try:
            if s.auth == "client_credentials":
                from cmsdials.auth.client_credentials import Credentials

                return Credentials(s.client_id or "", s.client_secret or "", client=auth)
            from cmsdials.auth.device import Credentials as DeviceCredentials

            return DeviceCredentials.from_creds_file(cache_dir=s.cache_dir, client=auth)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            raise ServiceError(
                f"Keycloak at {s.keycloak_url} refused the credentials of client "
                f"{s.client_id!r} (HTTP {status}): check login/password of dials_default"
            ) from None
        except requests.ConnectionError as exc:
            raise ServiceError(f"cannot reach Keycloak at {s.keycloak_url}: "
                               f"{http.describe_error(exc)}") from None

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.settings.workspace:
            headers["Workspace"] = self.settings.workspace
        self.creds.before_request(headers)
        return headers

    def _renew_token(self, used: str | None) -> None:
        with self._refresh_lock:
            if getattr(self.creds, "token", None) == used:  # not yet renewed by another thread
                self.creds.refresh()

    # ---- requests ----------------------------------------------------------------------

    def get(self, endpoint: str, params: dict[str, Any] | None = None, *,
            what: str = "") -> bytes:
        """GET api/v1/<endpoint> and return the body of a 200; retry what is transient."""
        url = self.api_url + endpoint
        return self.retrier.call(
            lambda: self.session.get(url, params=params, headers=self._headers(),
                                     timeout=self.timeout),
            lambda r: self._classify(r, what or url), what or url)

    def _classify(self, r: requests.Response, what: str) -> Outcome[bytes]:
        if r.status_code == 200:
            return http.ok(r.content)
        if r.status_code == 403 and b"access_token_expired" in r.content:
            self._renew_token(str(r.request.headers.get("Authorization", " ")).split(" ", 1)[1])
            return http.retry("access token expired")
        return http.by_status(r, f"{what}: DIALS answered HTTP {r.status_code}: "
                                 f"{http.short_body(r.content)}")

    def workspaces(self) -> list[str]:
        """The workspaces DIALS knows: the cheapest authenticated call (preflight's check)."""
        return self.get_json("workspaces/", what="DIALS workspaces")["workspaces"]

    def get_json(self, endpoint: str, params: dict[str, Any] | None = None, *,
                 what: str = "") -> Any:
        return orjson.loads(self.get(endpoint, params, what=what))

    def pages(self, endpoint: str, params: dict[str, Any], *, what: str = "",
              page_size: int = MAX_PAGE_SIZE, target_bytes: int | None = None,
              prefetch: bool = False) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Yield (`results`, JSON bytes) of each page, following cursors; a failed page is
        retried from its own cursor. With `target_bytes`, the page size adapts so a page
        stays near that many bytes. With `prefetch`, the next page is requested (in a
        background thread) while the caller works on this one: latency and the server's
        time overlap the caller's, at the cost of one more body in memory."""
        query = {**params, "page_size": page_size}
        ahead: Future[bytes] | None = None
        try:
            body = self.get(endpoint, query, what=what)
            while True:
                try:
                    page = orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise ServiceError(f"{what}: DIALS sent a page that is not JSON") from None
                results, nbytes = page["results"], len(body)
                token = _next_token(page.get("next"))
                del page, body  # only `results` lives on, and only while the caller holds it
                if token is not None:
                    query = {**query, "next_token": token}
                    if target_bytes and results:
                        query["page_size"] = rows_for_bytes(target_bytes, len(results),
                                                            nbytes)
                    if prefetch:
                        ahead = self._background().submit(self.get, endpoint, query, what=what)
                yield results, nbytes
                del results  # before the next page is parsed: one parsed page at a time
                if token is None:
                    return
                if ahead is not None:
                    body, ahead = ahead.result(), None
                else:
                    body = self.get(endpoint, query, what=what)
        finally:
            if ahead is not None and not ahead.cancel():
                wait([ahead])  # the caller stopped early: let the request finish, unused

    def _background(self) -> ThreadPoolExecutor:
        with self._refresh_lock:
            if self._prefetcher is None:
                self._prefetcher = ThreadPoolExecutor(self.pool_size,
                                                      thread_name_prefix="dials-prefetch")
            return self._prefetcher

    def list_all(self, endpoint: str, params: dict[str, Any], *, what: str = "") -> list[dict]:
        return [row for page, _ in self.pages(endpoint, params, what=what) for row in page]

    def close(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.shutdown(wait=True)
        super().close()


def rows_for_bytes(target_bytes: int, rows: int, nbytes: int) -> int:
    """Rows per page (1..MAX_PAGE_SIZE) that weigh about `target_bytes`, given that `rows`
    rows weighed `nbytes`."""
    return max(1, min(MAX_PAGE_SIZE, int(target_bytes * rows / nbytes)))


def _next_token(next_url: str | None) -> str | None:
    if not next_url:
        return None
    token = parse_qs(urlsplit(next_url).query).get("next_token")
    return token[0] if token else None
