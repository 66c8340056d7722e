"""The one retry mechanism (services.http.Retrier) and each client's classifier, against a
real local HTTP server that answers from a script: statuses, Retry-After, answers too slow,
bodies cut short or undecodable, refused connections, a Keycloak-like token endpoint for
DIALS and OMS."""

from __future__ import annotations

import gzip
import itertools
import random
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
import requests

from dialsflow.config.connections import CafSettings, DbsSettings, DialsSettings, OmsSettings
from dialsflow.errors import ServiceError
from dialsflow.services.caf import CafClient
from dialsflow.services.dbs import DbsClient
from dialsflow.services.dials import DialsClient
from dialsflow.services.http import (
    Outcome,
    Retrier,
    RetryPolicy,
    TooSlow,
    Unreachable,
    by_status,
    ok,
    pooled_session,
    retry_after,
)
from dialsflow.services.oms import DirectOms
from dialsflow_emulator.process import free_port

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
NGINX_502 = b"<html><head><title>502 Bad Gateway</title></head></html>"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False  # announce the whole length, send half, close the connection
    delay: float = 0.0  # seconds before the headers
    stall: float = 0.0  # seconds between the headers and the body


class Scripted(ThreadingHTTPServer):
    """GETs answered from `script` (path prefix -> replies in order, the last one repeated);
    any POST is a token endpoint handing out tok-1, tok-2, ..."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: dict[str, list[Reply]] = {}
        self.seen: list[tuple[str, str]] = []  # (path, Authorization) of every GET
        self.tokens = itertools.count(1)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def hits(self, prefix: str) -> int:
        return sum(path.startswith(prefix) for path, _ in self.seen)

    def next_reply(self, path: str, authorization: str) -> Reply:
        with self.lock:
            self.seen.append((path, authorization))
            prefix = max((p for p in self.script if path.startswith(p)), key=len, default=None)
            if prefix is None:
                return Reply(404, b"404 page not found\n")
            replies = self.script[prefix]
            return replies.pop(0) if len(replies) > 1 else replies[0]


class _Handler(BaseHTTPRequestHandler):
    server: Scripted

    def do_GET(self) -> None:
        reply = self.server.next_reply(self.path, self.headers.get("Authorization", ""))
        time.sleep(reply.delay)
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        try:
            self.wfile.flush()
            time.sleep(reply.stall)
            self.wfile.write(reply.body[: len(reply.body) // 2] if reply.cut else reply.body)
            self.wfile.flush()
        except OSError:  # the client stopped waiting
            pass
        self.close_connection = True

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = orjson.dumps({"access_token": f"tok-{next(self.server.tokens)}",
                             "expires_in": 3600, "token_type": "Bearer"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Scripted]:
    srv = Scripted()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def plain(r: requests.Response) -> Outcome[bytes]:
    """The simplest classifier: a 200 is the body, the shared statuses are retried."""
    return ok(r.content) if r.status_code == 200 else by_status(r, f"HTTP {r.status_code} "
                                                                   "for good")


def fetch(url: str, retrier: Retrier | None = None, *, shrink: bool = False,
          timeout: float = 10) -> bytes:
    session = pooled_session(pool=1)
    try:
        return (retrier or Retrier(FAST)).call(lambda: session.get(url, timeout=timeout),
                                               plain, "test GET", shrink=shrink)
    finally:
        session.close()


# ---- the mechanism ---------------------------------------------------------------------------


def test_transient_statuses_are_retried_until_success(server):
    server.script["/x"] = [Reply(503), Reply(502, NGINX_502), Reply(429), Reply(200, b"done")]
    assert fetch(server.url + "/x") == b"done"
    assert server.hits("/x") == 4


def test_retry_after_is_a_floor(server):
    server.script["/x"] = [Reply(429, headers={"Retry-After": "1"}), Reply(200, b"done")]
    t0 = time.monotonic()
    assert fetch(server.url + "/x") == b"done"
    assert time.monotonic() - t0 >= 1.0  # the policy alone would wait at most 0.01 s


def test_retry_after_forms():
    def parsed(value: str) -> float | None:
        r = requests.Response()
        r.headers["Retry-After"] = value
        return retry_after(r)

    assert parsed("7") == 7.0
    assert parsed("soon") is None
    assert parsed("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    assert retry_after(requests.Response()) is None


@pytest.mark.parametrize("status,cause,slow", [(503, "HTTP 503", False),
                                               (504, "HTTP 504 (gateway timeout)", True)])
def test_spent_budget_is_one_line(server, status, cause, slow):
    server.script["/x"] = [Reply(status)]
    with pytest.raises(ServiceError) as info:
        fetch(server.url + "/x")
    assert str(info.value) == f"test GET: gave up after 4 attempts, last cause: {cause}"
    assert not isinstance(info.value, Unreachable)
    assert isinstance(info.value, TooSlow) is slow
    assert server.hits("/x") == 4


def test_too_slow_is_retried_unless_the_caller_can_ask_for_less(server):
    server.script["/x"] = [Reply(504), Reply(200, b"done")]
    assert fetch(server.url + "/x") == b"done"  # as any transient cause
    server.script["/y"] = [Reply(503), Reply(504), Reply(200, b"done")]
    with pytest.raises(TooSlow) as info:
        fetch(server.url + "/y", shrink=True)  # at once, without waiting
    assert (str(info.value), info.value.cause, info.value.attempts) == (
        "test GET: HTTP 504 (gateway timeout)", "HTTP 504 (gateway timeout)", 2)
    assert server.hits("/y") == 2  # the 503 before it was retried as usual


@pytest.mark.parametrize("late", [Reply(200, b"late", delay=0.5),
                                  Reply(200, b"late", stall=0.5)], ids=["headers", "body"])
def test_read_timeout_is_too_slow(server, late):
    """No answer in time, whether the headers or the body are late."""
    server.script["/x"] = [late]
    with pytest.raises(TooSlow) as info:
        fetch(server.url + "/x", shrink=True, timeout=0.2)
    assert info.value.cause == "read timed out"
    assert server.hits("/x") == 1
    server.script["/y"] = [late, Reply(200, b"in time")]
    assert fetch(server.url + "/y", timeout=0.2) == b"in time"  # otherwise retried


def test_permanent_answer_fails_at_once(server):
    server.script["/x"] = [Reply(404, b"nope")]
    with pytest.raises(ServiceError, match=r"^HTTP 404 for good$"):
        fetch(server.url + "/x")
    assert server.hits("/x") == 1


def test_refused_connection_fails_in_seconds():
    url = f"http://127.0.0.1:{free_port()}/x"
    t0 = time.monotonic()
    with pytest.raises(Unreachable) as info:
        fetch(url, Retrier(RetryPolicy()))  # the default policy: 8 attempts otherwise
    assert time.monotonic() - t0 < 5
    assert str(info.value) == ("test GET: gave up after 4 attempts, last cause: "
                               "connection refused")
    assert info.value.cause == "connection refused"


def test_refused_after_an_answer_is_waited_for(server):
    """A service that answered before and now refuses is restarting: the whole budget."""
    retrier = Retrier(RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05))
    server.script["/x"] = [Reply(200, b"up")]
    assert fetch(server.url + "/x", retrier) == b"up"
    with pytest.raises(Unreachable, match=r"gave up after 6 attempts, last cause: connection "
                                          r"refused$"):
        fetch(f"http://127.0.0.1:{free_port()}/x", retrier)


def test_undecodable_body_is_retried(server):
    server.script["/x"] = [Reply(200, b"not gzip at all", {"Content-Encoding": "gzip"}),
                           Reply(200, gzip.compress(b"whole"), {"Content-Encoding": "gzip"})]
    assert fetch(server.url + "/x") == b"whole"
    assert server.hits("/x") == 2


def test_body_shorter_than_content_length_is_retried(server):
    body = gzip.compress(b"x" * 4000)
    server.script["/x"] = [Reply(200, b"y" * 1000, cut=True),
                           Reply(200, body, {"Content-Encoding": "gzip"}, cut=True),
                           Reply(200, body, {"Content-Encoding": "gzip"})]
    assert fetch(server.url + "/x") == b"x" * 4000  # Content-Length counts encoded bytes
    assert server.hits("/x") == 3



def gzip_json(value: object) -> tuple[bytes, bytes]:
    """(JSON, its gzip) for a value whose JSON gzips about 3:1."""
    raw = orjson.dumps(value)
    return raw, gzip.compress(raw)


def hex_rows(n: int = 3000) -> list[str]:
    rng = random.Random(7)
    return [f"/ZeroBias/Run2024C-PromptReco-v1/DQMIO#{rng.getrandbits(64):016x}"
            for _ in range(n)]


def test_gzip_length_is_checked_on_the_wire(server):
    """Content-Length counts the gzip bytes. Half of this gzip stream decodes to more bytes
    than the whole stream has, so only a count of the bytes on the wire sees the cut; a
    whole body, which decodes to three times its Content-Length, is taken at once."""
    raw, packed = gzip_json(hex_rows())
    cut = zlib.decompressobj(wbits=31).decompress(packed[: len(packed) // 2])
    assert len(cut) > len(packed) and len(raw) > 2.5 * len(packed)
    gz = {"Content-Encoding": "gzip"}
    server.script["/whole"] = [Reply(200, packed, gz)]
    assert fetch(server.url + "/whole") == raw
    server.script["/cut"] = [Reply(200, packed, gz, cut=True), Reply(200, packed, gz)]
    assert fetch(server.url + "/cut") == raw
    assert server.hits("/whole") == 1 and server.hits("/cut") == 2


def _dials_get(server: Scripted) -> object:
    with dials_client(server) as dials:
        return dials.get("th1/", {"run_number": 1})


def _dbs_blocks(server: Scripted) -> object:
    with dbs_client(server) as dbs:
        return dbs.blocks("/ZeroBias/Run2024C-PromptReco-v1/DQMIO")


def _caf_listing(server: Scripted) -> object:
    settings = CafSettings(server.url + "/CAF/certification", "Collisions24", "golden", True)
    with CafClient(settings, policy=FAST) as caf:
        return [f.name for f in caf.listing()]


def _oms_runs(server: Scripted) -> object:
    settings = OmsSettings(server.url + "/agg/api", server.url + "/token", "cmsoms-prod",
                           "id", "secret", "direct", True)
    with DirectOms(settings, policy=FAST) as oms:
        return [r.run_number for r in oms.runs_numbered(300000, 303000)]


def _listing(names: list[str]) -> bytes:
    rows = "".join(f'<img src="/icons/unknown.gif" alt="[   ]"> <a href="{n}">{n}</a> '
                   "2024-11-04 10:00  12K\n" for n in names)
    return f"<html><body><pre>{rows}</pre></body></html>\n".encode()


@pytest.mark.parametrize("call", [_dials_get, _dbs_blocks, _caf_listing, _oms_runs],
                         ids=["dials", "dbs", "caf", "oms"])
def test_every_client_retries_a_gzip_body_cut_short(server, call):
    names = hex_rows()
    if call is _dials_get:
        path, (raw, packed), expected = "/api/v1/th1/", gzip_json(names), orjson.dumps(names)
    elif call is _dbs_blocks:
        path, (raw, packed) = f"{DBS}/blocks", gzip_json([{"block_name": n} for n in names])
        expected = names
    elif call is _caf_listing:
        files = [f"Cert_Collisions2024_{300000 + i}_{300000 + i}_Golden_{n[-16:]}.json"
                 for i, n in enumerate(names)]
        path, raw, expected = "/CAF/certification/Collisions24/", _listing(files), files
        packed = gzip.compress(raw)
    else:
        runs = list(range(300000, 300000 + len(names)))
        page = {"data": [{"id": str(r), "attributes": {"run_number": r, "fill": n}}
                         for r, n in zip(runs, names, strict=True)], "links": {"next": None}}
        path, (raw, packed), expected = "/agg/api/v1/runs?", gzip_json(page), runs
    gz = {"Content-Encoding": "gzip"}
    server.script[path] = [Reply(200, packed, gz, cut=True), Reply(200, packed, gz)]
    assert call(server) == expected
    assert server.hits(path) == 2

# ---- the classifiers -------------------------------------------------------------------------

DBS = "/dbs/prod/global/DBSReader"
DBS_ERROR = orjson.dumps([{"error": {"reason": "ORA-01013", "message": "query cancelled",
                                     "function": "dbs.blocks", "code": 103}}])


def dbs_client(server: Scripted) -> DbsClient:
    return DbsClient(DbsSettings(server.url + DBS, None, True), policy=FAST)


def test_dbs_classifier(server):
    server.script[f"{DBS}/blocks"] = [Reply(502, NGINX_502, {"Content-Type": "text/html"}),
                                      Reply(200, b'[{"block_name": "/A/B/DQMIO#1"},'),
                                      Reply(200, b'[{"block_name": "/A/B/DQMIO#1"}]')]
    server.script[f"{DBS}/datasets"] = [Reply(200, b"[]")]
    server.script[f"{DBS}/files"] = [Reply(500, DBS_ERROR)]
    server.script[f"{DBS}/runs"] = [Reply(200, b"<html>CMSWEB Error: Authorisation required",
                                          {"Content-Type": "text/html"})]
    with dbs_client(server) as dbs:
        assert dbs.blocks("/A/B/DQMIO") == ["/A/B/DQMIO#1"]  # after a 502 and a cut list
        dbs.ping()
        with pytest.raises(ServiceError, match=r"DBS refused the query: query cancelled "
                                               r"\(DBS code 103\)$"):
            dbs.get("files", {"dataset": "/A/B/DQMIO"})
        with pytest.raises(ServiceError, match="cmsweb login page"):
            dbs.get("runs", {"dataset": "/A/B/DQMIO"})
    assert server.hits(f"{DBS}/blocks") == 3
    assert server.hits(f"{DBS}/files") == server.hits(f"{DBS}/runs") == 1  # final at once


def test_dbs_unreachable_names_the_connection():
    dead = f"http://127.0.0.1:{free_port()}{DBS}"
    with DbsClient(DbsSettings(dead, None, True), policy=FAST) as dbs, \
            pytest.raises(Unreachable) as info:
        dbs.ping()
    assert str(info.value) == (f"cannot reach DBS at {dead}: connection refused; check the "
                               "host of dbs_default")


LISTING = (b'<html><body><pre><img src="/icons/unknown.gif" alt="[   ]"> '
           b'<a href="Cert_Collisions2024_378981_386951_Golden.json">Cert_Collisions2024_378981_'
           b"386951_Golden.json</a> 2024-11-04 10:00  12K\n</pre></body></html>\n")


def test_caf_classifier(server):
    folder = "/CAF/certification/Collisions24/"
    server.script[folder] = [Reply(403), Reply(500), Reply(200, LISTING[:-30]),
                             Reply(200, LISTING)]
    server.script[folder + "Cert_"] = [Reply(200, b'{"379000": [[1, 5]], "379001": '),
                                       Reply(200, b'{"379000": [[1, 5]]}')]
    settings = CafSettings(server.url + "/CAF/certification", "Collisions24", "golden", True)
    with CafClient(settings, policy=RetryPolicy(attempts=5, base_delay=0.01)) as caf:
        cert = caf.current()
    missing = CafSettings(settings.url, "Collisions99", "golden", True)
    with CafClient(missing, policy=FAST) as caf, pytest.raises(ServiceError) as info:
        caf.ping()
    assert cert.runs == [379000] and cert.ranges(379000) == [(1, 5)]
    assert server.hits(folder) - server.hits(folder + "Cert_") == 4
    assert str(info.value) == (f"CAF listing: {server.url}/CAF/certification/Collisions99/ "
                               "answered HTTP 404 (no such class or folder?)")


def test_oms_classifier(server):
    runs = {"data": [{"id": "379000", "attributes": {"run_number": 379000}}],
            "links": {"next": None}}
    server.script["/agg/api/v1/runs?"] = [Reply(500), Reply(503, headers={"Retry-After": "0"}),
                                          Reply(200, orjson.dumps(runs))]
    settings = OmsSettings(server.url + "/agg/api", server.url + "/token", "cmsoms-prod",
                           "id", "secret", "direct", True)
    with DirectOms(settings, policy=FAST) as oms:
        assert [r.run_number for r in oms.runs_numbered(379000, 379000)] == [379000]
        server.script["/agg/api/v1/runs?"] = [
            Reply(400, orjson.dumps({"errors": [{"detail": "unknown filter"}]}))]
        with pytest.raises(ServiceError, match=r"^OMS runs query answered HTTP 400: unknown "
                                               r"filter$"):
            oms.ping()
    data = [path for path, _ in server.seen if path.startswith("/agg/api/v1/runs?")]
    assert len(data) == 4 and all("Bearer tok-1" == auth for path, auth in server.seen
                                  if path.startswith("/agg/api/v1/runs?"))


def dials_client(server: Scripted) -> DialsClient:
    settings = DialsSettings(server.url + "/", "tracker", "client_credentials",
                             server.url + "/auth/", "cern", "aud", "id", "secret", True, None)
    return DialsClient(settings, policy=FAST)


def test_dials_classifier(server):
    expired = orjson.dumps({"detail": "access_token_expired"})
    server.script["/api/v1/workspaces/"] = [Reply(403, expired),
                                            Reply(503, headers={"Retry-After": "0"}),
                                            Reply(200, b'{"workspaces": ["tracker"]}')]
    server.script["/api/v1/th1/"] = [Reply(500, b"<html>Server Error (500)</html>")]
    server.script["/api/v1/th2/"] = [Reply(403, b'{"detail": "no such workspace"}')]
    with dials_client(server) as dials:
        assert dials.workspaces() == ["tracker"]
        with pytest.raises(ServiceError, match=r"^th1: DIALS answered HTTP 500: HTML error "
                                               r"page$"):
            dials.get("th1/", {"me": "x"}, what="th1")
        with pytest.raises(ServiceError, match=r"HTTP 403: .*no such workspace"):
            dials.get("th2/", what="th2")
    tokens = [auth for path, auth in server.seen if path.startswith("/api/v1/workspaces/")]
    assert tokens == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]  # renewed once
    assert server.hits("/api/v1/th1/") == server.hits("/api/v1/th2/") == 1  # final at once
