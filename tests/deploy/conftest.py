"""Deployment tests: the native topology (deploy/local.py) on this machine's PostgreSQL and
Redis, and static checks of docker-compose.yaml. Run them alone with `pytest -m deploy`."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local import Deployment

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local.py"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deploy: starts or checks the Airflow deployment")


def run_local(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`deploy/local.py ARGS` as `make deploy-local` runs it, output captured."""
    return subprocess.run([sys.executable, str(LOCAL), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


class Started:
    """A running deployment of one test, stopped (database dropped) by the fixture."""

    def __init__(self, home: Path, output: str) -> None:
        self.home = home
        self.output = output
        dep = Deployment.load(home)
        assert dep is not None, f"no deployment state in {home}:\n{output}"
        self.dep = dep

    def logs(self) -> str:
        """Tails of every component log: printed when a test fails."""
        from deploy.local import _tail

        return "\n".join(f"--- {p.name}: {p.log}\n{_tail(p.log, 15)}" for p in self.dep.procs)


@pytest.fixture
def start_deployment(tmp_path: Path) -> Iterator:
    """Factory: start(*flags) → Started; every deployment started is stopped afterwards with
    its own database dropped, so nothing leaks into a developer's PostgreSQL or Redis."""
    started: list[Path] = []

    def start(*flags: str, timeout: float = 240) -> Started:
        home = tmp_path / f"home{len(started)}"
        db = f"dialsflow_test_{os.getpid()}_{secrets.token_hex(3)}"
        started.append(home)
        proc = run_local("start", "--home", str(home), "--db", db, "--port", "0",
                         "--redis-db", "auto", *flags, timeout=timeout)
        if proc.returncode:
            pytest.fail(f"deploy/local.py start failed ({proc.returncode}):\n{proc.stdout}\n"
                        f"{proc.stderr}")
        return Started(home, proc.stdout)

    yield start
    for home in started:
        run_local("stop", "--home", str(home), "--drop-db", "--grace", "20")
