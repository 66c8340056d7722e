"""Fault injection: latency, 5xx answers, 429 with Retry-After, connection resets, truncated bodies.

Whether a request fails is a deterministic function of (seed, URL, how many times that URL
was asked before), so a run with the same seed and the same requests sees the same faults
whatever the concurrency. At most `fault_max_consecutive` faults in a row hit the same URL:
transient faults are transient, and a client with a sane retry budget always gets through.
Keycloak (/auth/) and the control API (/_emulator/) are never faulted.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import struct
import threading

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .httputil import NGINX_PAGES, send_page
from .state import EmulatorState
from .world.basics import stable_int

FAULTED_PREFIXES = ("/api/", "/agg/", "/dbs/", "/CAF/")
RESET_EXTENSION = "dialsflow.reset"

class FaultPlan:
    """Decides, per request, whether and how it fails."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._seen: collections.Counter[str] = collections.Counter()
        self._streak: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def decide(self, key: str) -> str | None:
        s = self.state.settings
        if s.fault_rate <= 0 or not s.fault_kinds:
            return None
        with self._lock:
            attempt = self._seen[key]
            self._seen[key] += 1
            if self._streak[key] >= s.fault_max_consecutive:
                self._streak[key] = 0
                return None
            draw = stable_int("fault", s.seed, key, attempt) / float(1 << 63)
            if draw >= s.fault_rate:
                self._streak[key] = 0
                return None
            self._streak[key] += 1
        pick = stable_int("fault-kind", s.seed, key, attempt) % len(s.fault_kinds)
        return s.fault_kinds[pick]


class FaultMiddleware:
    """Pure ASGI middleware: counts requests, adds latency, injects faults."""

    def __init__(self, app, state: EmulatorState) -> None:
        self.app = app
        self.state = state
        self.plan = FaultPlan(state)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        state = self.state
        state.count(path)
        if not path.startswith(FAULTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        if state.settings.latency_ms > 0:
            await asyncio.sleep(state.settings.latency_ms / 1000.0)
        key = path + "?" + scope.get("query_string", b"").decode("latin-1")
        kind = self.plan.decide(key)
        if kind is None:
            await self.app(scope, receive, send)
            return
        state.faults[kind] += 1
        reset = scope.get("extensions", {}).get(RESET_EXTENSION)
        if kind == "reset" and reset is not None:
            reset()
            return
        if kind == "truncate" and reset is not None:
            await self.app(scope, receive, _truncating_send(send, reset))
            return
        if kind == "429":
            await send_page(send, 429, b'{"detail":"Request was throttled."}', b"application/json",
                        [(b"retry-after", str(state.settings.retry_after_s).encode())])
            return
        status = int(kind) if kind.isdigit() else 502
        await send_page(send, status, NGINX_PAGES.get(status, NGINX_PAGES[502]), b"text/html")


def _truncating_send(send, reset):
    """Send the headers (with the full Content-Length) and half the body, then cut the line."""

    async def wrapped(message) -> None:
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            await send({"type": "http.response.body", "body": body[: len(body) // 2],
                        "more_body": True})
            await asyncio.sleep(0)
            reset()
            return
        await send(message)

    return wrapped


class ResettableHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus a scope extension that resets the TCP connection."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {RESET_EXTENSION: self._reset_connection}

    def _reset_connection(self) -> None:
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:  # linger 0: close() sends RST, the client sees "connection reset by peer"
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abort()
