"""Start and stop an emulator in a child process: for tests, benchmarks and `make demo`."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from .cli import connection_env, connections


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """True when host:port is taken (a server binding it would fail with EADDRINUSE).
    SO_REUSEADDR as servers set it: a port left in TIME_WAIT is not "in use". Any other
    refusal (a privileged port, an unknown address) is the server's to report."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


class EmulatorProcess:
    """`with EmulatorProcess("--token-ttl", "5") as emu: emu.url ...`"""

    def __init__(self, *flags: str, profile: str = "demo", seed: int = 1,
                 host: str = "127.0.0.1", port: int | None = None,
                 log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.profile = profile
        self.seed = seed
        self.flags = list(flags)
        self.log_path = log_path
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmulatorProcess:
        cmd = [sys.executable, "-m", "dialsflow_emulator.cli", "serve", "--host", self.host,
               "--port", str(self.port), "--profile", self.profile, "--seed", str(self.seed),
               *self.flags]
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"emulator exited with code {self._proc.returncode}: "
                                   f"{self._last_line() or cmd}")
            try:
                if requests.get(f"{self.url}/_emulator/health", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"emulator did not answer on {self.url} within {timeout:.0f} s")

    def _last_line(self) -> str:
        """The last line the emulator logged (its error, when it exited), if it has a log."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        self._proc = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- control API -----------------------------------------------------------------------

    def connections(self, **kwargs: Any) -> dict[str, dict]:
        return connections(self.host, self.port, **kwargs)

    def connection_env(self, **kwargs: Any) -> dict[str, str]:
        return connection_env(self.host, self.port, **kwargs)

    def truth(self) -> dict:
        return self._control("GET", "truth")

    def now(self) -> str:
        return self._control("GET", "clock")["now"]

    def set_now(self, iso_time: str) -> str:
        return self._control("PUT", "clock", {"now": iso_time})["now"]

    def stats(self) -> dict:
        return self._control("GET", "stats")

    def reset_stats(self) -> None:
        self._control("DELETE", "stats")

    def set_faults(self, **settings: Any) -> dict:
        return self._control("PUT", "faults", settings)

    def server(self) -> dict:
        """DIALS' server model: workers, gateway_timeout_s, ms_per_mb, base_ms, gzip."""
        return self._control("GET", "server")

    def set_server(self, **settings: Any) -> dict:
        return self._control("PUT", "server", settings)

    def _control(self, method: str, name: str, body: dict | None = None) -> dict:
        r = requests.request(method, f"{self.url}/_emulator/{name}", json=body, timeout=30)
        r.raise_for_status()
        return r.json()
