"""Bad configuration fails the DAG run in its first task, with one clear line in that log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from dialsflow_emulator.process import EmulatorProcess
from localdev.airflow_home import LocalAirflow

ROOT = Path(__file__).resolve().parents[2]
LOGICAL = "2024-04-25T12:00:00+00:00"


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with EmulatorProcess("--now", LOGICAL) as e:
        yield e


@pytest.fixture(scope="module")
def home(tmp_path_factory, emu) -> Path:
    base = tmp_path_factory.mktemp("badconfig")
    LocalAirflow(base / "home", emu, base / "out").setup()
    return base


def bad_jobs_file(home: Path, kind: str) -> Path:
    path = home / f"jobs_{kind}.json"
    if kind == "invalid_json":
        path.write_text('{"jobs": [{"name": "x",}]}')
    elif kind == "bad_regex":
        (home / "mes_bad.json").write_bytes(orjson.dumps(["PixelPhase1/(unclosed"]))
        jobs = orjson.loads((ROOT / "include/jsons/jobs.json").read_bytes())
        jobs["jobs"][0]["mes_file"] = str(home / "mes_bad.json")
        jobs["jobs"][0]["datasets_file"] = str(ROOT / "include/jsons" /
                                               jobs["jobs"][0]["datasets_file"])
        path.write_bytes(orjson.dumps(jobs))
    return path


CASES = {
    "invalid_json": ({}, {}, "is not valid JSON"),
    "unknown_job": ({}, {"jobs": ["no_such_job"]}, "no job 'no_such_job'; known jobs: "
                    "demo_tracker, demo_ecal"),
    "bad_regex": ({}, {}, "invalid regex in MEs: 'PixelPhase1/(unclosed'"),
    "force_without_runs": ({}, {"force": True}, "force re-ingests complete runs: give the runs "
                           "to re-ingest with it"),
    "missing_connection": ({"AIRFLOW_CONN_OMS_DEFAULT": ""}, {},
                           "connection 'oms_default' is not defined"),
    "unreachable_service": (
        {"AIRFLOW_CONN_DBS_DEFAULT": '{"conn_type": "http", "host": "http://127.0.0.1:9/dbs"}'},
        {}, "cannot reach http://127.0.0.1:9/dbs (dbs_default): connection refused"),
    "missing_grid_proxy": (
        {"AIRFLOW_CONN_DBS_DEFAULT": '{"conn_type": "http", "host": "http://127.0.0.1:9/dbs", '
                                     '"extra": {"cert": "/nonexistent/x509up"}}'},
        {}, "grid proxy/certificate file /nonexistent/x509up of dbs_default does not exist"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_first_task_fails_with_one_clear_line(home, emu, case):
    env, conf, message = CASES[case]
    jobs_file = bad_jobs_file(home, case) if case in ("invalid_json", "bad_regex") else None
    airflow = LocalAirflow(home / "home", emu, home / "out", jobs_file=jobs_file,
                           extra_env=env)
    out = airflow.dags_test(LOGICAL, conf)
    log = out.stdout + out.stderr
    assert out.returncode == 1, log[-3000:]
    # one clear line of ours, then Airflow's one line (exit_code is the error), and no
    # traceback around them: a known error leaves the task as a SystemExit
    errors = [line for line in log.splitlines() if "[error" in line and message in line]
    assert len(errors) == 2, log[-3000:]
    assert "] dialsflow: " in errors[0] and "Task exited" in errors[1]
    assert "Task failed with exception" not in log
    assert "starting task_id=load_config" in log
    assert "starting task_id=discover" not in log  # nothing ran after the first task
