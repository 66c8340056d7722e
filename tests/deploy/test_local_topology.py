"""The native topology end to end with a trivial DAG: start (fresh DB, Celery on Redis),
trigger through REST v2, Celery runs both tasks, a task log comes back through REST, stop
leaves nothing behind. Alone: `.venv/bin/python -m pytest -m deploy -s`."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import psycopg2
import pytest
import redis

from deploy.native import processes, resources
from deploy.native.deployment import PG, REDIS, DeployError, Deployment, Proc
from deploy.rest import AirflowClient
from tests.deploy.conftest import run_local

pytestmark = pytest.mark.deploy

SMOKE_DAG = '''
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def deploy_smoke():
    @task
    def hello() -> str:
        print("hello from {marker}")
        return "{marker}"

    @task
    def echo(word: str) -> None:
        print(f"echo {{word}}")

    echo(hello())


deploy_smoke()
'''


def _db_exists(name: str) -> bool:
    with psycopg2.connect(dbname="postgres", **PG) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None


def test_trivial_dag_runs_on_celery_and_stops_cleanly(start_deployment, tmp_path: Path) -> None:
    marker = f"marker-{time.time_ns()}"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "deploy_smoke.py").write_text(SMOKE_DAG.format(marker=marker))

    t0 = time.monotonic()
    started = start_deployment("--dags", str(dags))
    t_started = time.monotonic()
    dep = started.dep
    assert {p.name for p in dep.procs} == {"api-server", "scheduler", "dag-processor",
                                          "triggerer", "celery-worker"}
    api = AirflowClient(dep.url, "admin", dep.admin_password)
    try:
        api.wait_dag("deploy_smoke", timeout=90)
        api.unpause("deploy_smoke")
        run = api.trigger("deploy_smoke")
        done = api.wait_run("deploy_smoke", run["dag_run_id"], timeout=120)
        t_ran = time.monotonic()
        assert done["state"] == "success"
        tis = {ti["task_id"]: ti for ti in api.task_instances("deploy_smoke", run["dag_run_id"])}
        assert {t: ti["state"] for t, ti in tis.items()} == {"hello": "success",
                                                             "echo": "success"}
        log = api.log_text(api.task_log("deploy_smoke", run["dag_run_id"], "hello"))
        assert f"hello from {marker}" in log
        echo = api.log_text(api.task_log("deploy_smoke", run["dag_run_id"], "echo"))
        assert f"echo {marker}" in echo  # the XCom went through the API and PostgreSQL
        worker_log = Path(next(p.log for p in dep.procs if p.name == "celery-worker"))
        received = re.findall(r"Task execute_workload\[([0-9a-f-]+)\] received",
                              worker_log.read_text())
        assert len(received) == 2, "the two tasks did not go through the Celery worker"
        # Celery reports its task done a few seconds after Airflow's state (supervisor exit)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker_log.read_text().count("] succeeded") < 2:
            time.sleep(0.5)
        assert all(f"execute_workload[{i}] succeeded" in worker_log.read_text() for i in received)
    except BaseException:
        print(started.logs())
        raise

    stopped = run_local("stop", "--home", str(started.home), "--drop-db", "--grace", "20")
    t_stopped = time.monotonic()
    assert stopped.returncode == 0, stopped.stderr
    assert "killed after" not in stopped.stdout, f"SIGTERM was not enough: {stopped.stdout}"
    assert not any(processes.group_alive(p) for p in dep.procs)
    assert not _db_exists(dep.db)
    assert redis.Redis(*REDIS, db=dep.redis_db).get(resources.REDIS_CLAIM) is None
    print(f"\nwall time: start {t_started - t0:.1f} s, DAG parsed+run {t_ran - t_started:.1f} s, "
          f"stop {t_stopped - t_ran:.1f} s, total {t_stopped - t0:.1f} s")


def test_busy_port_is_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(DeployError, match="in use"):
            resources.check_port(s.getsockname()[1], "api-server")


def test_redis_db_of_another_deployment_is_refused(tmp_path: Path) -> None:
    n = resources.claim_redis_db("auto", str(tmp_path / "a"))
    try:
        assert resources.claim_redis_db(str(n), str(tmp_path / "a")) == n  # ours: fine
        with pytest.raises(DeployError, match="in use"):
            resources.claim_redis_db(str(n), str(tmp_path / "b"))
        assert resources.claim_redis_db("auto", str(tmp_path / "b")) != n
    finally:
        resources.release_redis_db(n, str(tmp_path / "a"))
        for m in range(1, 16):
            resources.release_redis_db(m, str(tmp_path / "b"))


def test_second_start_from_a_running_home_is_refused(tmp_path: Path) -> None:
    """A recorded live process (this test's own) makes `start` refuse before touching
    PostgreSQL, Redis or ports."""
    import os

    me = Proc("scheduler", os.getpid(), processes.start_ticks(os.getpid()) or 0, "x")
    Deployment(home=str(tmp_path), db="unused", redis_db=0, port=1, worker_log_port=1,
               trigger_log_port=1, dags=str(tmp_path), password_file="x", procs=[me]).save()
    proc = run_local("start", "--home", str(tmp_path), "--port", "0")
    assert proc.returncode == 2
    assert "already running" in proc.stderr
