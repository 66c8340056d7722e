"""Deployment tests: the native topology (deploy/native) on this machine's PostgreSQL and
Redis, and static checks of docker-compose.yaml. Run them alone with `pytest -m deploy`."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from deploy.native.deployment import Deployment

ROOT = Path(__file__).resolve().parents[2]
def no_scheduled_runs(night: str) -> tuple[str, str]:
    """Deployment flags that end the DAG the day after `night` (DIALSFLOW_END_DATE).

    Discovery follows the certification, not the calendar: the scheduled run Airflow creates
    for today's interval when a test unpauses the DAG would ingest the emulator world's
    certified runs before the test's own nights. With an end date in the past the scheduler
    creates none; manual runs and backfills up to the end date run as usual."""
    end = date.fromisoformat(night[:10]) + timedelta(days=1)
    return ("--env", f"DIALSFLOW_END_DATE={end.isoformat()}")


def run_local(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m deploy.native ARGS` as `make deploy-local` runs it, output captured."""
    return subprocess.run([sys.executable, "-m", "deploy.native", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


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
        from deploy.native.processes import tail

        return "\n".join(f"--- {p.name}: {p.log}\n{tail(p.log, 15)}" for p in self.dep.procs)


def start_local(home: Path, *flags: str, timeout: float = 240) -> Started:
    """`deploy.native start` with a test database of its own; `stop_local` undoes it."""
    db = f"dialsflow_test_{os.getpid()}_{secrets.token_hex(3)}"
    proc = run_local("start", "--home", str(home), "--db", db, "--port", "0",
                     "--redis-db", "auto", *flags, timeout=timeout)
    if proc.returncode:
        stop_local(home)
        pytest.fail(f"deploy.native start failed ({proc.returncode}):\n{proc.stdout}\n"
                    f"{proc.stderr}")
    return Started(home, proc.stdout)


def stop_local(home: Path) -> None:
    run_local("stop", "--home", str(home), "--drop-db", "--grace", "20")


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
            pytest.fail(f"deploy.native start failed ({proc.returncode}):\n{proc.stdout}\n"
                        f"{proc.stderr}")
        return Started(home, proc.stdout)

    yield start
    for home in started:
        run_local("stop", "--home", str(home), "--drop-db", "--grace", "20")


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary folder, run as the
    `postgres` user, on a free port): a test may restart or stop it without disturbing the
    machine's cluster, other tests or a developer's deployment. Same binaries as the
    system's (the newest /usr/lib/postgresql/*/bin)."""

    def __init__(self) -> None:
        from dialsflow_emulator.process import free_port

        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                       key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
        if not found or os.geteuid() != 0 or shutil.which("runuser") is None:
            pytest.fail("a private PostgreSQL needs root, runuser and /usr/lib/postgresql/*/bin "
                        "(the machine CI runs on has them)")
        self.bindir = found[-1].parent
        self.folder = Path(tempfile.mkdtemp(prefix="dialsflow-pg-"))  # /tmp: postgres can enter
        shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = free_port()

    def _pg_ctl(self, *args: str, timeout: float = 120) -> None:
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                          str(self.log), *args, timeout=timeout)

    def _as_postgres(self, *cmd: str, timeout: float = 120) -> None:
        out = subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True,
                             text=True, timeout=timeout, cwd=self.folder)
        if out.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}"
                               f"{out.stderr}\n{self.server_log()[-2000:]}")

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> PrivatePostgres:
        if not self.data.exists():
            self._as_postgres(str(self.bindir / "initdb"), "-D", str(self.data), "-U",
                              "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        # fsync off: a test cluster, and the machine's disk is shared with other work
        self._pg_ctl("-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                           "-c fsync=off -c max_connections=200", "-w", "start")
        return self

    def restart(self, downtime: float = 0.0) -> None:
        """What `pg_ctlcluster … restart` does (fast shutdown: every session is cut, then
        start), with the server down for `downtime` seconds in between."""
        self._pg_ctl("-m", "fast", "-w", "stop")
        time.sleep(downtime)
        self._pg_ctl("-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                           "-c fsync=off -c max_connections=200", "-w", "start")

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._pg_ctl("-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
