"""One ASGI application serving every twin under its real URL paths, plus a control API."""

from __future__ import annotations

from datetime import timedelta

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import caf, dbs, dials, keycloak, oms
from .dials.server import DialsServer
from .faults import FaultMiddleware
from .httputil import json_response
from .state import EmulatorState
from .world.basics import iso, utc


def control_routes(state: EmulatorState, server: DialsServer) -> list[Route]:
    """/_emulator/: health, the world clock, counters, runtime fault and DIALS server
    settings."""

    async def health(request: Request) -> Response:
        s = state.settings
        return json_response({"status": "ok", "profile": s.profile, "seed": s.seed,
                              "now": iso(state.now)})

    async def clock(request: Request) -> Response:
        if request.method == "PUT":
            body = orjson.loads(await request.body() or b"{}")
            if "now" in body:
                state.set_now(utc(body["now"]))
            elif "advance_hours" in body:
                state.set_now(state.now + timedelta(hours=float(body["advance_hours"])))
            else:
                return json_response({"detail": "give 'now' (ISO 8601) or 'advance_hours'"}, 400)
        return json_response({"now": iso(state.now)})

    async def stats(request: Request) -> Response:
        if request.method == "DELETE":
            state.requests.clear()
            state.faults.clear()
            server.stats.reset()
        return json_response({"requests": dict(state.requests), "faults": dict(state.faults),
                              "dials_server": server.stats.as_dict(server.pool)})

    async def server_settings(request: Request) -> Response:
        """DIALS' workers, gateway timeout, rendering cost and gzip (dials/server.py)."""
        if request.method == "PUT":
            try:
                body = orjson.loads(await request.body() or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("give a JSON object")
                return json_response(server.configure(body))
            except (ValueError, orjson.JSONDecodeError) as exc:
                return json_response({"detail": str(exc)}, 400)
        return json_response(server.settings())

    async def faults(request: Request) -> Response:
        s = state.settings
        if request.method == "PUT":
            body = orjson.loads(await request.body() or b"{}")
            s.fault_rate = float(body.get("fault_rate", s.fault_rate))
            s.latency_ms = float(body.get("latency_ms", s.latency_ms))
            if "fault_kinds" in body:
                s.fault_kinds = tuple(body["fault_kinds"])
            if "failing_me" in body:
                state.failing_me = body["failing_me"]
        return json_response({"fault_rate": s.fault_rate, "latency_ms": s.latency_ms,
                              "fault_kinds": list(s.fault_kinds), "failing_me": state.failing_me})

    async def truth(request: Request) -> Response:
        return json_response(state.world.truth(state.now_for(request.headers)))

    return [
        Route("/_emulator/health", health),
        Route("/_emulator/clock", clock, methods=["GET", "PUT"]),
        Route("/_emulator/stats", stats, methods=["GET", "DELETE"]),
        Route("/_emulator/faults", faults, methods=["GET", "PUT"]),
        Route("/_emulator/server", server_settings, methods=["GET", "PUT"]),
        Route("/_emulator/truth", truth),
    ]


def build_app(state: EmulatorState):
    """Faults and latency (any data service) in front of DIALS' server model (/api/ only) in
    front of the twins' routes."""
    server = DialsServer(None, state)
    routes = [
        *control_routes(state, server),
        *keycloak.routes(state),
        *dials.routes(state),
        *oms.routes(state),
        *dbs.routes(state),
        *caf.routes(state),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = state
    server.app = app
    return FaultMiddleware(server, state)
