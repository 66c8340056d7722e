"""`dials_ingest` on PostgreSQL with the LocalExecutor: the single-host deployment (no
broker, no Celery worker; the scheduler runs the tasks). One night, triggered through REST.
Alone: `.venv/bin/python -m pytest tests/deploy/test_local_executor.py -s`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from deploy.native.deployment import ENV_FILE
from deploy.rest import AirflowClient

from ..expected import morning_after_release
from .conftest import no_scheduled_runs

pytestmark = [pytest.mark.deploy, pytest.mark.slow]

DAG = "dials_ingest"
JOB = "demo_tracker"
NOW = morning_after_release(1)  # emulator clock; the night below has runs due


def test_nightly_dag_on_the_local_executor(start_deployment) -> None:
    t0 = time.monotonic()
    started = start_deployment("--executor", "local", "--emulator", "--emulator-arg=--now",
                               f"--emulator-arg={NOW}", "--env", "DIALSFLOW_RETRIES=0",
                               *no_scheduled_runs(NOW))
    dep = started.dep
    try:
        assert dep.executor == "local" and dep.redis_db is None
        assert {p.name for p in dep.procs} == {"emulator", "api-server", "scheduler",
                                               "dag-processor", "triggerer"}
        env = json.loads((Path(dep.home) / ENV_FILE).read_text())
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert not any(k.startswith("AIRFLOW__CELERY__") for k in env)
        api = AirflowClient(dep.url, "admin", dep.admin_password)
        api.wait_dag(DAG, timeout=90)
        api.unpause(DAG)
        run = api.trigger(DAG, logical_date=NOW, conf={"jobs": [JOB]})
        done = api.wait_run(DAG, run["dag_run_id"], timeout=300)
        tis = api.task_instances(DAG, run["dag_run_id"])
        assert done["state"] == "success", {(t["task_id"], t["map_index"]): t["state"]
                                            for t in tis}
        ingests = [t for t in tis if t["task_id"] == "ingest"]
        assert len(ingests) == 2 and all(t["state"] == "success" for t in ingests)
        report = json.loads(next((Path(dep.home) / "output" / JOB / "_reports").glob(
            "manual__*.json")).read_text())
        assert report["verdict"].startswith("complete") and report["failures"] == []
        assert sum(len(u["written"]) for u in report["ingested"]) > 0
        # the task log is served by the scheduler's own log server (no Celery worker)
        log = api.log_text(api.task_log(DAG, run["dag_run_id"], "ingest", 1,
                                        ingests[0]["map_index"]))
        assert "runs written" in log
    except BaseException:
        print(started.logs())
        raise
    print(f"\nLocalExecutor night: {time.monotonic() - t0:.1f} s including start")
