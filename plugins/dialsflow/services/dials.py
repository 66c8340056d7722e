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

Production DIALS gives up on a request after 30 s (gunicorn and nginx), so a page that
takes longer to render is an HTML 504 every time, not a transient (docs/reference/dials.md
§1, §5). In `pages`, a 504 or a read timeout therefore asks again from the same cursor for
half as many rows, down to one; `PageLimit` remembers what was too slow so later pages do
not run into the same wall, and probes upwards now and then so one slow moment does not
keep pages small for good. Any other retryable cause (502, 503, 429, a reset) is retried at
the same size. Answers are gzipped by DIALS' nginx; we always ask for it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import requests

from dialsflow.config.connections import DialsSettings
from dialsflow.errors import ServiceError
from dialsflow.services import http
from dialsflow.services.http import Client, Outcome, Retrier, RetryPolicy

MAX_PAGE_SIZE = 500

log = logging.getLogger("dialsflow")


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
        # requests asks for gzip by default; said here because pages are several MB of JSON
        # and DIALS' nginx compresses it (docs/reference/dials.md §1).
        self.session.headers["Accept-Encoding"] = "gzip, deflate"
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
            return _device_credentials(s.cache_dir, auth)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            raise ServiceError(
                f"Keycloak at {s.keycloak_url} refused the credentials of client "
                f"{s.client_id!r} (HTTP {status}): check login/password of dials_default"
            ) from None
        except requests.ConnectionError as exc:
            raise ServiceError(self._unreachable(f"cannot reach Keycloak at {s.keycloak_url}: "
                                                 f"{http.describe_error(exc)}")) from None

    def _unreachable(self, cause: str) -> str:
        """`cause`, and with the production defaults, that no connection was set."""
        if self.settings.configured:
            return cause
        return ("no dials_default connection found, and production DIALS is unreachable "
                f"({cause}): set AIRFLOW_CONN_DIALS_DEFAULT (`dialsflow-emulator env` prints "
                "the emulator's)")

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
            what: str = "", shrink: bool = False) -> bytes:
        """GET api/v1/<endpoint> and return the body of a 200; retry what is transient.
        `shrink`: raise `http.TooSlow` at the first 504 or read timeout (see `pages`)."""
        url = self.api_url + endpoint
        try:
            body = self.retrier.call(
                lambda: self.session.get(url, params=params, headers=self._headers(),
                                         timeout=self.timeout),
                lambda r: self._classify(r, what or url), what or url, shrink=shrink)
        except http.Unreachable as exc:
            if self.settings.configured:
                raise
            raise ServiceError(self._unreachable(str(exc))) from None
        allow_cache = getattr(self.creds, "allow_cache", None)
        if allow_cache is not None:
            allow_cache()  # DIALS answered: held device credentials may be cached now
        return body

    def _classify(self, r: requests.Response, what: str) -> Outcome[bytes]:
        if r.status_code == 200:
            return http.ok(r.content)
        if r.status_code == 403 and b"access_token_expired" in r.content:
            self._renew_token(str(r.request.headers.get("Authorization", " ")).split(" ", 1)[1])
            return http.retry("access token expired")
        return http.by_status(r, f"{what}: DIALS answered HTTP {r.status_code}: "
                                 f"{http.short_body(r.content)}")

    def workspaces(self) -> list[str]:
        """The workspaces DIALS knows: the cheapest authenticated call (preflight's check).
        The shape of `workspaces/` is not verified (docs/reference/dials.md §2.9): a list of
        names, `{"workspaces": [names]}` or an object keyed by name are understood; any
        other answer is a ServiceError saying what came."""
        return workspace_names(self.get_json("workspaces/", what="DIALS workspaces"))

    def get_json(self, endpoint: str, params: dict[str, Any] | None = None, *,
                 what: str = "") -> Any:
        body = self.get(endpoint, params, what=what)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ServiceError(f"{what or self.api_url + endpoint}: DIALS answered HTTP 200 "
                               f"with something that is not JSON: "
                               f"{http.short_body(body)}") from None

    def pages(self, endpoint: str, params: dict[str, Any], *, what: str = "",
              page_size: int = MAX_PAGE_SIZE, target_bytes: int | None = None,
              prefetch: bool = False, limit: PageLimit | None = None
              ) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Yield (`results`, JSON bytes) of each page, following cursors; a failed page is
        retried from its own cursor, with half as many rows when DIALS was too slow (see
        `_page`). With `target_bytes`, the page size adapts so a page stays near that many
        bytes. Every size is held to `limit` (what DIALS was too slow for; share one between
        streams of similar rows, e.g. the runs of one dataset × ME). With `prefetch`, the
        next page is requested (in a background thread) while the caller works on this one:
        the server's time overlaps the caller's, at the cost of one more body in memory;
        a stream still has one request in flight at a time."""
        limit = limit if limit is not None else PageLimit()
        query = {**params, "page_size": limit.size(page_size)}
        ahead: Future[bytes] | None = None
        try:
            body = self._page(endpoint, query, what, limit)
            while True:
                try:
                    page = orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise ServiceError(f"{what}: DIALS sent a page that is not JSON") from None
                results, nbytes = page["results"], len(body)
                token = _next_token(page.get("next"))
                limit.worked(len(results))  # rows that came (a last page may be short)
                del page, body  # only `results` lives on, and only while the caller holds it
                if token is not None:
                    wanted = (rows_for_bytes(target_bytes, len(results), nbytes)
                              if target_bytes and results else page_size)
                    query = {**query, "next_token": token, "page_size": limit.size(wanted)}
                    if prefetch:
                        ahead = self._background().submit(self._page, endpoint, query, what,
                                                          limit)
                yield results, nbytes
                del results  # before the next page is parsed: one parsed page at a time
                if token is None:
                    return
                if ahead is not None:
                    body, ahead = ahead.result(), None
                else:
                    body = self._page(endpoint, query, what, limit)
        finally:
            if ahead is not None and not ahead.cancel():
                wait([ahead])  # the caller stopped early: let the request finish, unused

    def _page(self, endpoint: str, query: dict[str, Any], what: str,
              limit: PageLimit) -> bytes:
        """The body of one page. A 504 or a read timeout asks again from the same cursor
        for half as many rows (`limit` decides how many), down to one row; one row still
        too slow after the whole retry budget is a ServiceError. Each smaller try waits as a
        retry would (full jitter, growing): DIALS' worker renders the page it gave up on
        until done or killed, and asking again at once would add to that load."""
        size, step = int(query["page_size"]), 0
        while True:
            try:
                body = self.get(endpoint, {**query, "page_size": size}, what=what,
                                shrink=size > 1)
            except http.TooSlow as exc:
                if size == 1:
                    raise ServiceError(
                        f"{what}: {_too_slow_text(exc.cause)} even for a page of 1 row "
                        f"({exc.attempts} attempts): one row takes DIALS longer than its "
                        "time limit") from None
                smaller, step = limit.too_slow(size), step + 1
                log.warning("%s: %s for a page of %d rows; asking for %d from the same "
                            "cursor", what, _too_slow_text(exc.cause), size, smaller)
                time.sleep(self.retrier.policy.delay(step, exc.retry_after))
                size = smaller
                continue
            return body

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


def _device_credentials(cache_dir: str | None, auth: Any) -> Any:
    """cmsdials' device credentials: from its cache file when there is one (its folder
    exists then), else by the device flow, held in memory until DIALS answers
    (`_held_cache_class`): a login DIALS never answers leaves no `.cache/` behind."""
    from cmsdials.auth.device import DEFAULT_CACHE_DIR, DEFAULT_CACHE_FILENAME
    from cmsdials.auth.device import Credentials as DeviceCredentials

    if (Path(cache_dir or DEFAULT_CACHE_DIR) / DEFAULT_CACHE_FILENAME).is_file():
        return DeviceCredentials.from_creds_file(cache_dir=cache_dir, client=auth)
    token = auth.device_auth_flow()
    return _held_cache_class()(token.access_token, token.expires_at, token.expires_in,
                               token.refresh_expires_at, token.refresh_expires_in,
                               token.refresh_token, token.token_type, cache_dir=cache_dir,
                               client=auth)


@functools.cache
def _held_cache_class() -> type:
    """cmsdials' device Credentials, writing its cache file only after `allow_cache()` (built on
    first use: cmsdials is imported lazily, see `DialsClient._credentials`)."""
    from cmsdials.auth.device import Credentials as DeviceCredentials

    class HeldCache(DeviceCredentials):
        held = True
        pending = False

        def cache_credentials(self) -> None:
            if self.held:
                self.pending = True
            else:
                super().cache_credentials()

        def allow_cache(self) -> None:
            if self.held:
                self.held = False
                if self.pending:
                    super().cache_credentials()

    return HeldCache


class PageLimit:
    """The page sizes DIALS has been too slow for, so requests stay below them; thread-safe,
    shared by streams of similar rows (the runs of one dataset × ME).

    `slow` is the smallest size that was too slow, `cap` the size requests are held to
    meanwhile (the largest that worked since, or the half being tried). A too-slow page is
    asked again at half its size (or at the cap, when a probe above it failed). Probes
    climb back: after PROBE_AFTER pages in a row worked, one request goes halfway from the
    cap to `slow`, until the cap is within an eighth of it; then, after `patience` more
    pages (doubled each time this fails), one request asks for `slow` itself. So a size
    that is really too slow costs a few failed probes, not a 504 on every page, and one slow
    moment (DIALS busy) does not keep pages small for good. A page of `slow` rows or more
    that works shows the failure was not the size's: everything is forgotten."""

    PROBE_AFTER = 4
    PATIENCE = 32

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.slow: int | None = None
        self.cap: int | None = None
        self._streak = 0  # pages that worked since the last probe or failure
        self._patience = self.PATIENCE

    def size(self, wanted: int) -> int:
        """Rows to ask for when `wanted` would be asked for without a limit."""
        with self._lock:
            if self.slow is None or self.cap is None or wanted <= self.cap:
                return max(1, wanted)
            allowed = self.cap
            if self.slow - self.cap > max(1, self.cap // 8):
                if self._streak >= self.PROBE_AFTER:
                    allowed, self._streak = (self.cap + self.slow) // 2, 0
            elif self._streak >= self._patience:
                allowed, self._streak = self.slow, 0
            return max(1, min(wanted, allowed))

    def worked(self, size: int) -> None:
        """A page of `size` rows came in time (count the rows that came: a last page asked
        for more rows than were left proves nothing about the size asked for)."""
        with self._lock:
            self._streak += 1
            if self.slow is None or self.cap is None:
                return
            if size >= self.slow:
                self.slow = self.cap = None
                self._patience = self.PATIENCE
            elif size > self.cap:
                self.cap = size

    def too_slow(self, size: int) -> int:
        """Record that `size` rows were too slow; the size to ask for instead (≥ 1)."""
        with self._lock:
            self._streak = 0
            if self.slow is not None and size >= self.slow:
                self._patience *= 2  # the wall is still there: look again later
            self.slow = size if self.slow is None else min(self.slow, size)
            if self.cap is not None and self.cap < size:
                smaller = max(self.cap, size // 2)  # a probe failed: back towards the cap
            else:
                smaller = max(1, size // 2)
                self.cap = smaller
            return smaller


def _too_slow_text(cause: str) -> str:
    if cause.startswith("HTTP "):
        return f"DIALS answered {cause}"
    return f"DIALS did not answer in time ({cause})"


def workspace_names(answer: Any) -> list[str]:
    """Workspace names from an answer of `workspaces/` (see `DialsClient.workspaces`)."""
    names: Any = None
    if isinstance(answer, list):
        names = answer
    elif isinstance(answer, dict) and "workspaces" in answer:
        names = answer["workspaces"]
        if isinstance(names, dict):
            names = list(names)
    elif isinstance(answer, dict) and "detail" not in answer:
        names = list(answer)
    if isinstance(names, list) and all(isinstance(n, str) and n for n in names):
        return names
    raise ServiceError("DIALS workspaces: expected a list of workspace names, "
                       '{"workspaces": [names]} or an object keyed by name; got '
                       f"{_shape(answer)}")


def _shape(value: Any) -> str:
    """A few words on what a JSON value is, for error messages."""
    if isinstance(value, dict):
        keys = ", ".join(map(str, list(value)[:5])) + (", ..." if len(value) > 5 else "")
        if "workspaces" in value:
            return f"an object whose workspaces is {_shape(value['workspaces'])}"
        if "detail" in value:
            return f"an error object: {str(value['detail'])[:120]}"
        return f"an object with keys {keys}" if value else "an empty object"
    if isinstance(value, list):
        kinds = sorted({type(v).__name__ for v in value if not isinstance(v, str) or not v})
        return f"a list of {len(value)} items, not all names ({', '.join(kinds)})"
    if value is None:
        return "null"
    return f"a {type(value).__name__}: {str(value)[:80]}"


def rows_for_bytes(target_bytes: int, rows: int, nbytes: int) -> int:
    """Rows per page (1..MAX_PAGE_SIZE) that weigh about `target_bytes`, given that `rows`
    rows weighed `nbytes`."""
    return max(1, min(MAX_PAGE_SIZE, int(target_bytes * rows / nbytes)))


def _next_token(next_url: str | None) -> str | None:
    if not next_url:
        return None
    token = parse_qs(urlsplit(next_url).query).get("next_token")
    return token[0] if token else None
