"""Run the emulator on uvicorn (httptools + uvloop, keep-alive) in this process."""

from __future__ import annotations

import uvicorn

from .app import build_app
from .faults import ResettableHttpToolsProtocol
from .state import EmulatorState


def serve(state: EmulatorState, host: str, port: int) -> None:
    config = uvicorn.Config(
        build_app(state), host=host, port=port, http=ResettableHttpToolsProtocol,
        loop="uvloop", access_log=False, log_level="warning", timeout_keep_alive=75,
        # Bodies are built whole (cached JSON), so nothing streams: a plain server is enough.
    )
    uvicorn.Server(config).run()
