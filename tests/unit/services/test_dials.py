"""DialsClient against a real local HTTP server that pages rows like DIALS (cursor tokens,
absolute `next` links) and can be too slow for large pages, the way production DIALS is:
past its 30 s limit a page is an HTML 504 every time (docs/reference/dials.md §1, §5).

What is checked: pages that are too slow are asked again from the same cursor with half as
many rows, later pages keep what worked and probe upwards without a 504 on every page, a
single row still too slow is one line, other transient causes keep the page size, gzip is
asked for and a corrupt gzip body retried, `workspaces/` of an unexpected shape is one
line, and prefetch keeps one request in flight per stream."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from dialsflow.config.connections import DialsSettings
from dialsflow.errors import ServiceError
from dialsflow.services.dials import DialsClient, PageLimit, workspace_names
from dialsflow.services.http import RetryPolicy

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
NGINX_504 = (b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
             b"<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n")
WHAT = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO × PXLayer_1 run 379412"

#: What the server does with one request: None serves the page, an int answers that status
#: (an nginx page), "sleep" waits `PageServer.sleep` seconds first, "reset" closes the
#: connection without an answer, "corrupt" sends a gzip header with a body that is not gzip.
Action = int | str | None


class PageServer(ThreadingHTTPServer):
    """`GET /api/v1/<anything>/?page_size=N[&next_token=T]` pages through `rows` rows; the
    token is the offset of the page. `decide(size, offset, n)` (n: requests so far) says
    what to do with each request; every request is recorded as (page_size, token) and its
    whole query. Rows are `{"ls_number": i + 1, "pad": ...}` unless `row(i)` makes them."""

    def __init__(self, rows: int, decide: Callable[[int, int, int], Action] | None = None,
                 *, row_bytes: int = 100, compress: bool = False, ms_per_row: float = 0.0,
                 row: Callable[[int], dict] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.daemon_threads = True
        self.rows = rows
        self.decide = decide or (lambda size, offset, n: None)
        pad = "x" * max(0, row_bytes - 40)
        self.row = row or (lambda i: {"ls_number": i + 1, "pad": pad})
        self.compress = compress
        self.ms_per_row = ms_per_row
        self.sleep = 0.0
        self.requests: list[tuple[int, str | None]] = []
        self.queries: list[dict[str, str]] = []
        self.served: list[bool] = []  # per request: did it get its page
        self.headers_seen: list[dict[str, str]] = []
        self.workspaces_body = b'{"workspaces": ["tracker"]}'
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    @property
    def sizes(self) -> list[int]:
        return [size for size, _ in self.requests]

    def page(self, size: int, offset: int) -> bytes:
        end = min(self.rows, offset + size)
        rows = [self.row(i) for i in range(offset, end)]
        nxt = (f"{self.url}api/v1/th2/?next_token={end}&page_size={size}"
               if end < self.rows else None)
        return orjson.dumps({"next": nxt, "previous": None, "results": rows})


class _Handler(BaseHTTPRequestHandler):
    server: PageServer
    protocol_version = "HTTP/1.1"  # keep-alive, as nginx
    disable_nagle_algorithm = True  # headers and body are two writes

    def do_GET(self) -> None:
        srv = self.server
        url = urlsplit(self.path)
        if url.path.endswith("/workspaces/"):
            return self._send(200, srv.workspaces_body)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        size, token = int(query.get("page_size", 10)), query.get("next_token")
        with srv.lock:
            n = len(srv.requests)
            srv.requests.append((size, token))
            srv.queries.append(query)
            srv.served.append(False)
            srv.headers_seen.append(dict(self.headers))
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            action = srv.decide(size, int(token or 0), n)
            if action == "sleep":
                time.sleep(srv.sleep)
                action = None
            time.sleep(srv.ms_per_row * min(size, srv.rows) / 1000)
            if action == "reset":
                self.close_connection = True
                return
            if isinstance(action, int):
                return self._send(action, NGINX_504 if action == 504 else b"<html></html>",
                                  "text/html")
            if action == "corrupt":
                return self._send(200, b"this is not gzip", encoding="gzip")
            body = srv.page(size, int(token or 0))
            with srv.lock:
                srv.served[n] = True
            if srv.compress:
                return self._send(200, gzip.compress(body), encoding="gzip")
            return self._send(200, body)
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              encoding: str | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up waiting (read timeout)
            self.close_connection = True

    def do_POST(self) -> None:  # the Keycloak token endpoint
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(200, orjson.dumps({"access_token": "tok", "expires_in": 3600,
                                      "token_type": "Bearer"}))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[..., PageServer]]:
    servers: list[PageServer] = []

    def start(rows: int, decide: Callable[[int, int, int], Action] | None = None,
              **kwargs: object) -> PageServer:
        srv = PageServer(rows, decide, **kwargs)  # type: ignore[arg-type]
        threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def client(srv: PageServer, *, policy: RetryPolicy = FAST, timeout: float = 10.0,
           pool_size: int = 4) -> DialsClient:
    settings = DialsSettings(srv.url, "tracker", "client_credentials", srv.url + "auth/",
                             "cern", "aud", "id", "secret", True, None)
    return DialsClient(settings, policy=policy, timeout=timeout, pool_size=pool_size)


def slower_than(limit: int) -> Callable[[int, int, int], Action]:
    """Production DIALS for rows of one weight: a page of more than `limit` rows is a 504."""
    return lambda size, offset, n: 504 if size > limit else None


def all_rows(dials: DialsClient, **kwargs: object) -> list[int]:
    return [row["ls_number"] for page, _ in dials.pages("th2/", {"me_id": 7}, what=WHAT,
                                                         **kwargs)  # type: ignore[arg-type]
            for row in page]


# ---- pages that are too slow -------------------------------------------------------------------


@pytest.mark.parametrize("prefetch", [False, True])
def test_slow_pages_are_halved_from_the_same_cursor(serve, prefetch):
    srv = serve(300, slower_than(40))
    with client(srv) as dials:
        assert all_rows(dials, page_size=500, prefetch=prefetch) == list(range(1, 301))
    assert srv.sizes[:5] == [500, 250, 125, 62, 31]  # halved until it fits
    assert [token for _, token in srv.requests[:5]] == [None] * 5
    # every retry of a page asks from the cursor of the page that was too slow
    for (size, token), (next_size, next_token) in zip(srv.requests, srv.requests[1:],
                                                      strict=False):
        if size > 40:
            assert next_token == token and next_size < size


def test_later_pages_keep_what_worked_and_probe_upwards(serve):
    """Without a cap, every page would ask for 500 again and be a 504 every other request;
    with it, the size climbs from 31 towards the wall in a few probes and stays there."""
    srv = serve(3000, slower_than(40))
    with client(srv) as dials:
        assert all_rows(dials, page_size=500) == list(range(1, 3001))
    too_slow = [size for size in srv.sizes if size > 40]
    assert len(too_slow) <= 4 + 3  # the first ladder (500..62) and at most 3 failed probes
    assert max(srv.sizes[-10:]) >= 36  # settled within an eighth of the wall
    assert all(size <= 40 for size in srv.sizes[-10:])  # and no more 504s


def test_one_slow_moment_does_not_keep_pages_small(serve):
    srv = serve(6000, lambda size, offset, n: 504 if n == 1 else None)  # the second page
    with client(srv) as dials:
        assert all_rows(dials, page_size=100) == list(range(1, 6001))
    assert srv.sizes[:3] == [100, 100, 50]
    assert srv.sizes[3:6] == [50, 50, 50]  # held to what worked, then probing upwards
    assert srv.sizes[-5:] == [100] * 5  # and back to full pages after a while


def test_byte_target_still_sizes_pages_below_the_wall(serve):
    """1 kB rows and a 100 kB target want 100 rows a page; DIALS manages 60."""
    srv = serve(2000, slower_than(60), row_bytes=1000)
    with client(srv) as dials:
        assert all_rows(dials, page_size=4, target_bytes=100_000) == list(range(1, 2001))
    assert srv.sizes[0] == 4 and srv.sizes[1] in (99, 100)  # sized by the first page
    assert sum(size > 60 for size in srv.sizes) <= 1 + 3
    assert 53 <= srv.sizes[-2] <= 60


def test_read_timeout_halves_the_page_too(serve):
    srv = serve(40, lambda size, offset, n: "sleep" if size > 10 else None)
    srv.sleep = 1.0
    with client(srv, timeout=0.3) as dials:
        assert all_rows(dials, page_size=40) == list(range(1, 41))
    assert srv.sizes[:3] == [40, 20, 10]


def test_too_slow_even_for_one_row_is_one_line(serve):
    srv = serve(10, lambda size, offset, n: 504)
    with client(srv) as dials, pytest.raises(ServiceError) as info:
        all_rows(dials, page_size=8)
    assert str(info.value) == (f"{WHAT}: DIALS answered HTTP 504 (gateway timeout) even for "
                               "a page of 1 row (4 attempts): one row takes DIALS longer "
                               "than its time limit")
    assert srv.sizes == [8, 4, 2, 1, 1, 1, 1]  # the ladder, then the budget at one row


def test_read_timeout_even_for_one_row_is_one_line(serve):
    srv = serve(10, lambda size, offset, n: "sleep")
    srv.sleep = 0.5
    with client(srv, timeout=0.1) as dials, pytest.raises(ServiceError) as info:
        all_rows(dials, page_size=2)
    assert str(info.value) == (f"{WHAT}: DIALS did not answer in time (read timed out) even "
                               "for a page of 1 row (4 attempts): one row takes DIALS longer "
                               "than its time limit")


@pytest.mark.parametrize("cause", [502, 503, 429, "reset"])
def test_other_retryable_causes_keep_the_page_size(serve, cause):
    srv = serve(100, lambda size, offset, n: cause if n in (1, 2) else None)
    with client(srv) as dials:
        assert all_rows(dials, page_size=30) == list(range(1, 101))
    assert srv.sizes == [30, 30, 30, 30, 30, 30]
    assert srv.requests[1][1] == srv.requests[2][1] == srv.requests[3][1] == "30"


def test_get_retries_a_504_at_the_same_request(serve):
    """Only pages can be made smaller: any other GET retries a 504 as it is."""
    srv = serve(100, lambda size, offset, n: 504 if n < 2 else None)
    with client(srv) as dials:
        dials.get("th2/", {"page_size": 100})
    assert srv.sizes == [100, 100, 100]


def test_page_limit_settles_below_the_wall():
    limit = PageLimit()
    assert limit.size(500) == 500  # nothing known: as wanted
    assert limit.too_slow(500) == 250
    assert limit.too_slow(250) == 125
    limit.worked(125)
    sizes = []
    for _ in range(40):  # the wall is at 200 rows
        size = limit.size(500)
        if size > 200:
            cap = limit.cap
            assert limit.too_slow(size) == cap  # a failed probe: back to what worked
        else:
            limit.worked(size)
        sizes.append(size)
    assert 176 <= sizes[-1] <= 200 and len({*sizes[-10:]}) == 1
    assert sum(size > 200 for size in sizes) <= 3
    assert limit.size(50) == 50  # a smaller wish is never raised


def test_a_page_above_the_wall_that_works_forgets_the_wall():
    limit = PageLimit()
    limit.too_slow(400)
    limit.worked(40)  # a last page of 40 rows, whatever was asked: proves nothing
    assert limit.size(500) == 200
    limit.worked(400)  # asked before the 504 was known, and fine: it was not the size
    assert limit.size(500) == 500


def test_short_last_pages_do_not_lift_the_limit(serve):
    """Runs of 30 rows and a wall at 20: every last page is asked for 20 and brings 10."""
    srv = serve(30, slower_than(20))
    limit = PageLimit()
    with client(srv) as dials:
        for _ in range(5):
            assert all_rows(dials, page_size=40, limit=limit) == list(range(1, 31))
    assert srv.sizes[:3] == [40, 20, 20]
    assert srv.sizes.count(40) == 1  # the wall is not forgotten
    assert sum(size > 20 for size in srv.sizes[1:]) <= 2  # probes only


# ---- gzip, workspaces, load ------------------------------------------------------------------


def test_gzip_is_asked_for_and_a_corrupt_gzip_body_is_retried(serve):
    srv = serve(50, lambda size, offset, n: "corrupt" if n == 0 else None, compress=True)
    with client(srv) as dials:
        assert all_rows(dials, page_size=20) == list(range(1, 51))
    assert srv.sizes == [20, 20, 20, 20]  # the corrupt body was asked again at its size
    assert all("gzip" in h.get("Accept-Encoding", "") for h in srv.headers_seen)


@pytest.mark.parametrize("answer,names", [
    (["tracker", "csc"], ["tracker", "csc"]),
    ({"workspaces": ["tracker", "csc"]}, ["tracker", "csc"]),
    ({"workspaces": {"tracker": {}, "csc": {}}}, ["tracker", "csc"]),
    ({"tracker": {"primary_datasets": ["ZeroBias"]}, "ecal": {}}, ["tracker", "ecal"]),
    ([], []),
])
def test_workspaces_of_the_shapes_we_know(serve, answer, names):
    srv = serve(1)
    srv.workspaces_body = orjson.dumps(answer)
    with client(srv) as dials:
        assert dials.workspaces() == names


@pytest.mark.parametrize("body,got", [
    (b'{"workspaces": "tracker"}', "an object whose workspaces is a str: tracker"),
    (b'{"workspaces": null}', "an object whose workspaces is null"),
    (b'[{"name": "tracker"}]', "a list of 1 items, not all names (dict)"),
    (b'["tracker", 3]', "a list of 2 items, not all names (int)"),
    (b'{"detail": "Workspace not found"}', "an error object: Workspace not found"),
    (b'"tracker"', "a str: tracker"),
    (b"null", "null"),
    (b"42", "a int: 42"),
])
def test_workspaces_of_another_shape_is_one_line(serve, body, got):
    srv = serve(1)
    srv.workspaces_body = body
    with client(srv) as dials, pytest.raises(ServiceError) as info:
        dials.workspaces()
    assert str(info.value) == ("DIALS workspaces: expected a list of workspace names, "
                               '{"workspaces": [names]} or an object keyed by name; got '
                               + got)


def test_workspaces_not_json_is_one_line(serve):
    srv = serve(1)
    srv.workspaces_body = b"<html><body>Sign in with CERN SSO</body></html>"
    with client(srv) as dials, pytest.raises(ServiceError) as info:
        dials.workspaces()
    assert str(info.value) == ("DIALS workspaces: DIALS answered HTTP 200 with something "
                               "that is not JSON: HTML error page")


@pytest.mark.parametrize("answer", [{}, {"workspaces": [None]}, [[]], [""], {"a": 1}, 1.5,
                                    True, {"workspaces": {"x": 1}}])
def test_workspace_names_are_a_list_or_a_service_error(answer):
    try:
        names = workspace_names(answer)
    except ServiceError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(names, list) and all(isinstance(n, str) for n in names)


@pytest.mark.parametrize("prefetch", [False, True])
def test_prefetch_keeps_one_request_in_flight_per_stream(serve, prefetch):
    """The bound of docs/operations.md ("DIALS capacity"): N streams (runs fetched at once)
    never have more than N requests at DIALS, prefetch or not; prefetch makes them
    back-to-back (the server works while the caller converts)."""
    srv = serve(200, ms_per_row=1.0)  # 20 ms a page of 20
    streams = 3

    def consume(dials: DialsClient) -> int:
        n = 0
        for page, _ in dials.pages("th2/", {}, what=WHAT, page_size=20, prefetch=prefetch):
            time.sleep(0.02)  # the caller's work on a page (conversion to Arrow)
            n += len(page)
        return n

    with client(srv, pool_size=streams) as dials, \
            ThreadPoolExecutor(streams) as pool:
        t0 = time.monotonic()
        assert list(pool.map(lambda _: consume(dials), range(streams))) == [200] * streams
        elapsed = time.monotonic() - t0
    assert srv.max_in_flight <= streams
    assert elapsed > 0.2  # ten pages of 20 ms each, at least, per stream


def test_device_credentials_are_cached_only_once_dials_answered(emulator, tmp_path):
    """Device flow (the emulator's Keycloak approves at once; cmsdials polls after 5 s):
    the token is held in memory until DIALS answers, so a login DIALS never answers leaves
    no cache folder behind; after the first answer the cache file is there."""
    cache = tmp_path / "cache"
    settings = DialsSettings(emulator.url + "/", "tracker", "device", emulator.url + "/auth/",
                             "cern", "cms-dials-prod-confidential-app", None, None, True,
                             str(cache))
    with DialsClient(settings, policy=FAST) as dials:
        assert dials.creds.token and not cache.exists()
        assert dials.workspaces()
        assert (cache / "creds").is_file()
