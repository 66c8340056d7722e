"""An `airflow api-server` of a LocalAirflow home, for the tests that need the UI or the
REST API with a real auth manager."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from localdev.airflow_home import AIRFLOW, ROOT, LocalAirflow


@contextlib.contextmanager
def api_server(airflow: LocalAirflow, port: int) -> Iterator[str]:
    """`airflow api-server` of this home on 127.0.0.1:port, healthy, until the block ends;
    its log is `api-server.log` in the home."""
    url = f"http://127.0.0.1:{port}"
    log_path = airflow.home / "api-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([AIRFLOW, "api-server", "--port", str(port), "--host",
                                 "127.0.0.1"], env=airflow.env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            _wait_healthy(url, proc, log_path)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_healthy(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    for _ in range(1200):
        if proc.poll() is not None:
            pytest.fail(f"api-server exited: {log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail("api-server did not answer within 120 s")
