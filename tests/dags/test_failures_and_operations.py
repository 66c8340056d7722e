"""A failing night as an operator reads it, and the CLI paths the docs give operators.

One `airflow dags test` night of the demo world in which DIALS answers HTTP 500 for one ME:
its mapped task keeps its label, its first error line says job, dataset, ME, run and cause,
a known error ends without a traceback, no too-short-secret warning, and the completeness
table agrees with the verdict. Then, on the same metadata DB, the backfill the README shows
carries its conf and a manual run without a logical date does not collide with that night.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from dialsflow_emulator.process import EmulatorProcess
from localdev.airflow_home import LocalAirflow
from localdev.demo import NIGHT

BPIX_L2 = ("PixelPhase1/Phase1_MechanicalView/PXBarrel/"
           "digi_occupancy_per_SignedModuleCoord_per_SignedLadderCoord_PXLayer_2")
LABEL = "demo_tracker: ZeroBias/Run2024C-PromptReco-v1 × " + BPIX_L2.rsplit("/", 1)[-1]
RUNS = (379433, 379439)


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with EmulatorProcess("--now", NIGHT) as e:
        yield e


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, emu) -> LocalAirflow:
    base = tmp_path_factory.mktemp("failing_night")
    return LocalAirflow(base / "home", emu, base / "out",
                        extra_env={"DIALSFLOW_RETRIES": "0"}).setup()


@pytest.fixture(scope="module")
def night(airflow, emu) -> str:
    """The failing night's output (stdout + stderr of `airflow dags test`)."""
    emu.set_faults(failing_me="PXLayer_2$")
    try:
        out = airflow.dags_test(NIGHT, {"jobs": ["demo_tracker"],
                                        "runs": ",".join(map(str, RUNS))})
    finally:
        emu.set_faults(failing_me=None)
    log = out.stdout + out.stderr
    assert out.returncode == 1, log[-3000:]
    return log


def task_log(log: str, task_id: str, map_index: int = -1) -> str:
    """One task's lines of a `dags test` output."""
    start = log.index(f"[DAG TEST] starting task_id={task_id} map_index={map_index} ")
    return log[start:log.index(f"[DAG TEST] end task task_id={task_id} map_index={map_index} ",
                               start)]


def db(airflow: LocalAirflow) -> sqlite3.Connection:
    return sqlite3.connect(airflow.home / "airflow.db")


def test_the_failed_mapped_task_keeps_its_label(airflow, night):
    rows = dict(db(airflow).execute(
        "select rendered_map_index, state from task_instance where task_id = 'ingest'"))
    assert rows[LABEL] == "failed"
    assert {label.split(" × ")[1] for label in rows} == {"digi_occupancy_per_SignedModuleCoord"
                                                         "_per_SignedLadderCoord_PXLayer_1",
                                                         BPIX_L2.rsplit("/", 1)[-1]}


def test_a_failure_reads_at_first_sight(airflow, night):
    (failed,), = db(airflow).execute(
        "select map_index from task_instance where task_id = 'ingest' and state = 'failed'")
    text = task_log(night, "ingest", failed)
    errors = [line for line in text.splitlines() if "[error" in line]
    # the first error line: run and cause first, then job, dataset and ME (short)
    assert re.search(rf"run ({RUNS[0]}|{RUNS[1]}) failed: DIALS answered HTTP 500.* "
                     rf"\({re.escape(LABEL)}\)", errors[0]), errors[0]
    # the full dataset × ME path once (the task's first line), never in per-run lines
    assert text.count(f"DQMIO × {BPIX_L2}") == 1
    # a known error: its own line and Airflow's one line, no traceback
    assert "Traceback" not in text and "Task failed with exception" not in text
    assert "Task exited" in errors[-1] and re.search(
        rf"UnitFailed: \d+ of \d+ runs failed: run \d+: DIALS answered HTTP 500.*"
        rf"\({re.escape(LABEL)}\)", errors[-1]), errors[-1]


def test_no_connection_value_is_too_short_to_mask(night):
    assert "too short" not in night


def test_the_completeness_table_says_the_verdict(night):
    text = task_log(night, "completeness")
    summary = next(line for line in text.splitlines() if " dataset × ME units, " in line)
    assert summary.startswith("FAILED: ")
    assert "dialsflow: job demo_tracker: FAILED: ingestion failed" in text


def test_the_readme_backfill_carries_its_conf(airflow, night):
    out = airflow.airflow("backfill", "create", "--dag-id", "dials_ingest",
                          "--from-date", "2024-08-30", "--to-date", "2024-08-31",
                          "--dag-run-conf", '{"jobs": ["demo_ecal"]}')
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    confs = [orjson.loads(conf) for (conf,) in db(airflow).execute(
        "select conf from dag_run where run_type = 'backfill'")]
    assert confs and all(conf == {"jobs": ["demo_ecal"]} for conf in confs)


def test_a_manual_run_without_logical_date_never_collides(airflow, night):
    """The night above holds its logical date: a second run of it must leave it empty."""
    out = airflow.airflow("dags", "trigger", "dials_ingest", "-c", '{"jobs": ["demo_ecal"]}')
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    runs = db(airflow).execute(
        "select run_id, logical_date from dag_run where run_type = 'manual'").fetchall()
    assert len(runs) == 2 and len({run_id for run_id, _ in runs}) == 2
    assert sorted(logical is None for _, logical in runs) == [False, True]


def test_a_known_error_fails_in_one_line_an_unknown_one_keeps_its_traceback():
    from dialsflow.airflow.failures import TaskFailed, known_errors
    from dialsflow.errors import InputError

    @known_errors
    def bad_input() -> None:
        raise InputError("no job 'x'; known jobs: demo_tracker, demo_ecal")

    @known_errors
    def bug() -> None:
        raise KeyError("x")

    with pytest.raises(SystemExit) as exc:
        bad_input()
    assert isinstance(exc.value, TaskFailed)
    assert str(exc.value) == "InputError: no job 'x'; known jobs: demo_tracker, demo_ecal"
    with pytest.raises(KeyError):
        bug()


def test_unknown_map_labels_fit_airflows_column():
    from dialsflow.airflow.payloads import LABEL_MAX, UnitTask
    from dialsflow.pipeline.units import Unit
    from dialsflow.store.layout import UnitKey

    unit = Unit(UnitKey("tracker", "/ZeroBias/Run2024C-PromptReco-v1/DQMIO", "A/" + "x" * 300),
                1, 2, 1, (379433,))
    label = UnitTask("demo_tracker", Path("/out"), unit).label
    assert len(label) == LABEL_MAX and label.startswith("demo_tracker: ZeroBias/Run2024C-")
