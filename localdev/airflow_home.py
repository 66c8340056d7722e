"""A throwaway Airflow (SQLite, own AIRFLOW_HOME) wired to an emulator: for tests and demos.

It runs the project's DAGs with the real `airflow` CLI in child processes, so DAG runs
behave as under `airflow dags test`: every task in order, retries included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from dialsflow_emulator.process import EmulatorProcess

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
POOL = "dials_api"
#: Every local Airflow keeps its state in .airflow/<name>/ (git-ignored): demo, standalone,
#: and deploy (the native deployment's default home).
STATE_ROOT = ROOT / ".airflow"


def state_home(name: str) -> Path:
    """The state folder of one local Airflow: `.airflow/<name>/`."""
    return STATE_ROOT / name


class LocalAirflow:
    """`LocalAirflow(home, emu, output_root).setup().dags_test("2024-04-19", {...})`"""

    def __init__(self, home: Path, emulator: EmulatorProcess, output_root: Path, *,
                 jobs_file: Path | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.home = Path(home)
        self.emulator = emulator
        self.output_root = Path(output_root)
        self.jobs_file = jobs_file or ROOT / "include" / "jsons" / "jobs.json"
        self.extra_env = dict(extra_env or {})

    @property
    def env(self) -> dict[str, str]:
        """The child's environment: ours, the emulator's connections, `extra_env`. Never
        Airflow's unit-test mode of a pytest process around it (tests/dags sets it for the
        in-process DagBag): that mode ignores airflow.cfg, so each child drew its own JWT
        secret and the executor's tasks were refused by the api-server."""
        inherited = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__UNIT_TEST_MODE"}
        return {
            **inherited,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "DIALSFLOW_JOBS_FILE": str(self.jobs_file),
            "DIALSFLOW_OUTPUT_ROOT": str(self.output_root),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **self.emulator.connection_env(),
            **self.extra_env,
        }

    def airflow(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([AIRFLOW, *args], capture_output=True, text=True, env=self.env,
                              timeout=timeout, cwd=ROOT)

    def setup(self) -> LocalAirflow:
        """Migrate the SQLite metadata DB and create the `dials_api` pool (idempotent)."""
        self.home.mkdir(parents=True, exist_ok=True)
        for args in (("db", "migrate"), ("pools", "set", POOL, "2", "DIALS API concurrency")):
            out = self.airflow(*args)
            if out.returncode != 0:
                raise RuntimeError(f"airflow {' '.join(args)} failed:\n{out.stderr[-3000:]}")
        return self

    def dags_test(self, logical_date: str, conf: dict[str, Any] | None = None, *,
                  dag_id: str = "dials_ingest",
                  timeout: float = 900) -> subprocess.CompletedProcess:
        """One DAG run for `logical_date`; exit code 1 when the run failed."""
        return self.airflow("dags", "test", dag_id, logical_date, "-c",
                            orjson.dumps(conf or {}).decode(), timeout=timeout)

    def task_logs(self, dag_id: str = "dials_ingest") -> dict[str, str]:
        """Every task log file of the DAG (relative path → text)."""
        base = self.home / "logs" / f"dag_id={dag_id}"
        if not base.is_dir():
            return {}
        return {str(p.relative_to(base)): p.read_text(errors="replace")
                for p in sorted(base.rglob("*.log"))}
