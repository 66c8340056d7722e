"""DIALS' serving capacity as a client meets it: nginx in front of gunicorn's sync workers.

Production DIALS [cms-DQM/dials v1.12: oc/prod/deployments/web/backend.yaml,
oc/prod/configmaps/backend.yaml, oc/prod/configmaps/backend-rproxy.yaml,
backend/scripts/run-django-production.sh] runs 5 pods, each with gunicorn's default sync
workers (`--workers 3 --timeout 30`) behind an nginx sidecar (`proxy_read_timeout 30`,
`gzip on` with `application/json` among `gzip_types`, `gzip_proxied any`, `gzip_vary on`).
All of CMS shares those 15 workers. A sync worker renders one request at a time; Django REST
framework serialises every float in Python, so the time a page takes grows with its JSON.

This ASGI middleware puts that in front of the DIALS twin (every path under /api/):

- **Worker slots.** At most `server_workers` requests are rendered at once (one FIFO queue
  for the 15 workers of all pods). Waiting for a slot counts towards the gateway timeout, as
  time in gunicorn's listen backlog counts towards nginx's.
- **Rendering cost.** A request holds its slot for `server_base_ms` plus `server_ms_per_mb`
  per MB (10^6 bytes) of the JSON it answers; a page from the 30 s page cache costs only the
  base (routes.py `Endpoints`, dials/cache.py). The emulator's own time counts towards it.
- **Gateway timeout.** When queueing plus rendering would pass `gateway_timeout_s`, the
  client gets nginx's HTML 504 at that moment, every time for a page that is too big: not a
  transient. The worker does not know nginx gave up: it keeps its slot until it finishes, or
  until gunicorn kills it at its own timeout (the same 30 s); a request that timed out while
  still queued is picked up by a worker later and rendered for nobody. A page is stored in
  the page cache only when its rendering finished, so a killed page is never cached.
- **gzip.** nginx compresses 200, 403 and 404 answers of its `gzip_types` (and text/html)
  of at least 20 bytes at its default level 1 when the request accepts gzip over HTTP/1.1,
  drops `Content-Length` (the answer goes out chunked) and adds `Vary: Accept-Encoding`
  [nginx: src/http/modules/ngx_http_gzip_filter_module.c; nginx docs: ngx_http_gzip_module
  defaults `gzip_comp_level 1`, `gzip_min_length 20`]. Its own 504 and Django's 500 pages
  are not compressed.

Settings live in `Settings` (state.py) and can be changed while serving (`PUT
/_emulator/server`); counters are in `/_emulator/stats` under `dials_server`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import zlib
from dataclasses import dataclass
from typing import Any

from ..httputil import NGINX_PAGES, send_page, server_error_html
from ..state import EmulatorState

SERVED_PREFIX = "/api/"
RENDER_KEY = "dialsflow.render"  # scope key: the page cache tells this layer what it did
GZIP_TYPES = frozenset({  # backend-rproxy.yaml gzip_types, plus text/html (always)
    "text/html", "text/plain", "text/css", "application/json", "application/x-javascript",
    "text/xml", "application/xml", "application/xml+rss", "text/javascript"})
GZIP_STATUSES = frozenset({200, 403, 404})
GZIP_MIN_LENGTH = 20
GZIP_LEVEL = 1
GZIP_IN_THREAD_BYTES = 256 * 1024  # zlib releases the GIL: big bodies compress off the loop
GZIP_CACHE_BYTES = 64 * 2**20
MB = 1_000_000
LOG = logging.getLogger(__name__)


@dataclass
class RenderInfo:
    """What the DIALS handler did with the page cache, for the cost of this request."""

    cache_hit: bool = False
    store: Any = None  # callable storing the rendered page, called when rendering finished


class WorkerPool:
    """Worker slots with a FIFO queue; the size can change while requests wait."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()

    @property
    def queued(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    async def acquire(self, timeout: float | None) -> bool:
        """Take a slot, waiting at most `timeout` seconds (None: as long as it takes)."""
        if self.busy < self.size and not self._waiters:
            self.busy += 1
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter),
                                   None if timeout is None else max(0.0, timeout))
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        if waiter.done() and not waiter.cancelled():  # handed a slot, possibly just in time
            return True
        self._abandon(waiter)
        return False

    def _abandon(self, waiter: asyncio.Future[bool]) -> None:
        if waiter.done() and not waiter.cancelled():
            self.release()  # a slot was handed over after all: pass it on
            return
        waiter.cancel()
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def release(self) -> None:
        self.busy -= 1
        self._hand_over()

    def resize(self, size: int) -> None:
        self.size = size
        self._hand_over()

    def _hand_over(self) -> None:
        while self._waiters and self.busy < self.size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.busy += 1
                waiter.set_result(True)


@dataclass
class Captured:
    """One answer of the DIALS twin, held back until its rendering time has passed."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class ServerStats:
    """Counters for /_emulator/stats."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.rendered = 0  # pages rendered (cache misses and uncached routes)
        self.cache_hits = 0
        self.queued = 0  # requests that had to wait for a worker
        self.queue_wait_s = 0.0
        self.max_queue_wait_s = 0.0
        self.render_s = 0.0  # worker time spent, including work nobody received
        self.gateway_timeouts = 0  # 504s sent (queueing plus rendering past the timeout)
        self.timed_out_in_queue = 0  # of those: still waiting for a worker at the timeout
        self.worker_kills = 0  # renders cut at the worker timeout (gunicorn kills the worker)
        self.gzipped = 0

    def as_dict(self, pool: WorkerPool) -> dict[str, Any]:
        out = {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(self).items()}
        out.update(busy_workers=pool.busy, waiting=pool.queued)
        return out


class DialsServer:
    """ASGI middleware modelling DIALS' nginx + gunicorn front (module docstring)."""

    def __init__(self, app, state: EmulatorState) -> None:
        self.app = app
        self.state = state
        self.pool = WorkerPool(state.settings.server_workers)
        self.stats = ServerStats()
        self._background: set[asyncio.Task] = set()
        self.gzipped = GzipCache(GZIP_CACHE_BYTES)

    # -- settings -----------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        s = self.state.settings
        return {"workers": s.server_workers, "gateway_timeout_s": s.gateway_timeout_s,
                "ms_per_mb": s.server_ms_per_mb, "base_ms": s.server_base_ms, "gzip": s.gzip}

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply control-API changes; ValueError names a bad one."""
        s = self.state.settings
        checks = {"workers": (int, 1), "gateway_timeout_s": (float, 0.001),
                  "ms_per_mb": (float, 0.0), "base_ms": (float, 0.0)}
        unknown = set(changes) - set(checks) - {"gzip"}
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, (kind, low) in checks.items():
            if name in changes:
                raw = changes[name]
                if isinstance(raw, bool) or not isinstance(raw, int | float) or (
                        kind is int and raw != int(raw)) or raw < low:
                    raise ValueError(f"{name} must be a number >= {low}")
                values[name] = kind(raw)
        if "gzip" in changes:
            if not isinstance(changes["gzip"], bool):
                raise ValueError("gzip must be true or false")
            s.gzip = changes["gzip"]
        s.server_workers = values.get("workers", s.server_workers)
        s.gateway_timeout_s = values.get("gateway_timeout_s", s.gateway_timeout_s)
        s.server_ms_per_mb = values.get("ms_per_mb", s.server_ms_per_mb)
        s.server_base_ms = values.get("base_ms", s.server_base_ms)
        self.pool.resize(s.server_workers)
        return self.settings()

    # -- requests -----------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(SERVED_PREFIX):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        timeout = self.state.settings.gateway_timeout_s
        deadline = arrived + timeout
        self.stats.requests += 1
        request_body = await _read_body(receive)
        if not await self.pool.acquire(deadline - loop.time()):
            self._waited(loop.time() - arrived)
            self.stats.gateway_timeouts += 1
            self.stats.timed_out_in_queue += 1
            await send_page(send, 504, NGINX_PAGES[504], b"text/html")
            # still in gunicorn's backlog: a worker takes it later and renders it for nobody
            self._spawn(self._render_for_nobody(scope, request_body))
            return
        started = loop.time()
        self._waited(started - arrived)
        holding = True
        try:
            answer, info = await self._render(scope, request_body)
            finished = started + max(self._cost(answer, info), loop.time() - started)
            killed_at = started + timeout  # gunicorn's --timeout, the same 30 s as nginx's
            if finished <= deadline:
                await asyncio.sleep(finished - loop.time())
                holding = False
                self._finish(info, finished - started)
                await self._respond(scope, send, answer)
                return
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            holding = False
            self._spawn(self._hold_until(finished, killed_at, info, started))
        finally:
            if holding:  # cancelled (shutdown): free the worker
                self.pool.release()
        self.stats.gateway_timeouts += 1
        await send_page(send, 504, NGINX_PAGES[504], b"text/html")

    def _waited(self, seconds: float) -> None:
        if seconds > 0.001:
            self.stats.queued += 1
            self.stats.queue_wait_s += seconds
            self.stats.max_queue_wait_s = max(self.stats.max_queue_wait_s, seconds)

    def _cost(self, answer: Captured, info: RenderInfo) -> float:
        s = self.state.settings
        per_mb = 0.0 if info.cache_hit else s.server_ms_per_mb * len(answer.body) / MB
        return (s.server_base_ms + per_mb) / 1000.0

    def _finish(self, info: RenderInfo, busy_s: float) -> None:
        """Rendering done: the worker is free and the page reaches the cache."""
        self.pool.release()
        self.stats.render_s += busy_s
        if info.cache_hit:
            self.stats.cache_hits += 1
        else:
            self.stats.rendered += 1
        if info.store is not None:
            info.store()

    async def _hold_until(self, finished: float, killed_at: float, info: RenderInfo,
                          started: float) -> None:
        """After a 504: the worker renders on until done or killed at its timeout."""
        loop = asyncio.get_running_loop()
        if finished > killed_at:
            try:
                await asyncio.sleep(max(0.0, killed_at - loop.time()))
            finally:  # a fresh worker replaces the killed one; nothing is cached
                self.pool.release()
            self.stats.worker_kills += 1
            self.stats.render_s += killed_at - started
            return
        try:
            await asyncio.sleep(max(0.0, finished - loop.time()))
        except BaseException:
            self.pool.release()
            raise
        self._finish(info, finished - started)

    async def _render_for_nobody(self, scope, request_body: bytes) -> None:
        loop = asyncio.get_running_loop()
        await self.pool.acquire(None)
        started = loop.time()
        try:
            answer, info = await self._render(scope, request_body)
        except BaseException:
            self.pool.release()
            raise
        finished = started + max(self._cost(answer, info), loop.time() - started)
        await self._hold_until(finished, started + self.state.settings.gateway_timeout_s,
                               info, started)

    async def _render(self, scope, request_body: bytes) -> tuple[Captured, RenderInfo]:
        """Run the DIALS twin for this request and keep its answer."""
        info = RenderInfo()
        inner = dict(scope)
        inner[RENDER_KEY] = info
        parts: list[bytes] = []
        start: dict[str, Any] = {}
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": request_body, "more_body": False}

        async def keep(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        try:
            await self.app(inner, replay, keep)
        except Exception:  # an emulator bug: Django would answer its 500 page
            LOG.exception("DIALS twin failed on %s", scope.get("path"))
            response = server_error_html()
            return Captured(response.status_code, list(response.raw_headers),
                            response.body), info
        return Captured(start.get("status", 500), list(start.get("headers", [])),
                        b"".join(parts)), info

    async def _respond(self, scope, send, answer: Captured) -> None:
        headers, body = answer.headers, answer.body
        if self._gzip_applies(scope, answer):
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"vary", b"Accept-Encoding"))
            if _accepts_gzip(scope):
                body = await _compress(body, self.gzipped)
                headers.append((b"content-encoding", b"gzip"))
                self.stats.gzipped += 1
            else:
                headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _gzip_applies(self, scope, answer: Captured) -> bool:
        """nginx's gzip filter takes the answer (before asking whether the client accepts)."""
        if not self.state.settings.gzip or scope["method"] == "HEAD":
            return False
        if answer.status not in GZIP_STATUSES or len(answer.body) < GZIP_MIN_LENGTH:
            return False
        headers = dict((k.lower(), v) for k, v in answer.headers)
        if headers.get(b"content-encoding"):
            return False
        media = headers.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1")
        return media.lower() in GZIP_TYPES

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _accepts_gzip(scope) -> bool:
    """`Accept-Encoding` names gzip (q not 0) on an HTTP/1.1 request (gzip_http_version 1.1)."""
    if scope.get("http_version", "1.1") == "1.0":
        return False
    for name, value in scope["headers"]:
        if name.lower() != b"accept-encoding":
            continue
        for item in value.decode("latin-1").split(","):
            coding, _, params = item.strip().partition(";")
            if coding.strip().lower() != "gzip":
                continue
            q = params.strip().lower()
            if not q.startswith("q=") or _positive(q[2:]):
                return True
    return False


def _positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return True


def _gzip(body: bytes) -> bytes:
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + 15, 8)
    return packer.compress(body) + packer.flush()


class GzipCache:
    """Compressed copies of recent bodies, by identity: a page from the page cache is the same
    bytes object each time, so repeating it costs no compression (nginx has no such cache,
    but the emulator must not be the bottleneck of a benchmark)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._items: collections.OrderedDict[int, tuple[bytes, bytes]] = (
            collections.OrderedDict())

    def get(self, body: bytes) -> bytes | None:
        item = self._items.get(id(body))
        if item is None or item[0] is not body:
            return None
        self._items.move_to_end(id(body))
        return item[1]

    def put(self, body: bytes, packed: bytes) -> None:
        if len(packed) > self.budget // 4:
            return
        old = self._items.pop(id(body), None)
        if old is not None:
            self.size -= len(old[1])
        self._items[id(body)] = (body, packed)
        self.size += len(packed)
        while self.size > self.budget:
            self.size -= len(self._items.popitem(last=False)[1][1])


async def _compress(body: bytes, cache: GzipCache) -> bytes:
    if len(body) < GZIP_IN_THREAD_BYTES:
        return _gzip(body)
    packed = cache.get(body)
    if packed is None:
        packed = await asyncio.to_thread(_gzip, body)
        cache.put(body, packed)
    return packed


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
