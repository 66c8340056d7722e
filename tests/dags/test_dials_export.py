"""The export DAG: scheduled on the output assets of the jobs that export, and its task
refreshing a job's exports after a night (against a tree fetched from the emulator)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from airflow.sdk import Asset, AssetAny

import dialsflow
from dialsflow.airflow import export_tasks
from dialsflow.airflow.assets import OUTPUTS
from dialsflow.config.connections import DialsSettings
from dialsflow.config.runs import RunSelection
from dialsflow.errors import InputError

from ..clients import connection
from .conftest import DAGS

ZB = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
CHARGE = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"
CHARGE_FILE = "ZeroBias-Run2024C-PromptReco-v1-DQMIO-PixelPhase1-Tracks-PXBarrel-" \
              "charge_PXLayer_1.parquet"


def jobs_file(folder: Path, output: Path) -> Path:
    (folder / "datasets.json").write_bytes(orjson.dumps([ZB]))
    (folder / "mes.json").write_bytes(orjson.dumps([f"{CHARGE}$"]))
    job = {"workspace": "tracker", "datasets_file": "datasets.json", "mes_file": "mes.json",
           "output": str(output), "completeness_tolerance": 0.1}
    path = folder / "jobs.json"
    path.write_bytes(orjson.dumps({"jobs": [
        {"name": "exported", **job, "export": {"to": "exports", "format": "dialstools"}},
        {"name": "plain", **job}]}))
    return path


def test_scheduled_on_the_output_assets_of_the_exporting_jobs(tmp_path, monkeypatch):
    """Parsed as the dag-processor parses it (offline: test_parse_is_fast_and_offline parses
    the whole folder with every socket refused)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("DIALSFLOW_JOBS_FILE", str(jobs_file(tmp_path, tmp_path / "out")))
    bag = DagBag(dag_folder=str(DAGS / "dials_export.py"))
    assert not bag.import_errors
    dag = bag.dags["dials_export"]
    assert set(dag.task_dict) == {"export"}
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAny)
    assert [(a.name, a.uri) for a in condition.objects] == [
        ("dialsflow/exported", (tmp_path / "out").as_uri())]
    # the trigger form: Jobs not required, the exporting jobs offered
    schema = dag.params.get_param("jobs").schema
    assert "null" in schema["type"] and schema["examples"] == ["exported"]


def test_without_an_exporting_job_it_runs_by_hand_only(dagbag):
    dag = dagbag.dags["dials_export"]  # the demo's jobs file: no job exports
    assert set(dag.task_dict) == {"export"}
    assert type(dag.timetable).__name__ == "NullTimetable"
    assert dag.max_active_runs == 1


@pytest.fixture(scope="module")
def night(emulator, truth, tmp_path_factory) -> Path:
    """A job's output after a night: two runs of a 1D ME fetched from the emulator."""
    ds = next(d for d in truth["datasets"] if d["dataset"] == ZB)
    runs = sorted(int(r) for r, v in ds["runs"].items() if v["in_dials"])[:2]
    out = tmp_path_factory.mktemp("night")
    settings = DialsSettings.from_connection(connection(emulator, "dials_default"))
    report = dialsflow.fetch(replace(settings, workspace="tracker"), [ZB], [f"{CHARGE}$"],
                             out, runs=RunSelection.of(runs))
    assert len(report.written) == 2 and not report.failed
    return out


def test_the_task_refreshes_the_triggering_jobs_exports(night, tmp_path, monkeypatch):
    path = jobs_file(tmp_path, night)
    monkeypatch.setenv("DIALSFLOW_OUTPUT_ROOT", str(tmp_path / "root"))
    exports = tmp_path / "root" / "exports"
    # as Airflow hands them over: the job's asset, the alias its event came through, others
    triggered = {"triggering_asset_events": {
        Asset(name="dialsflow/exported", uri=night.as_uri()): [],
        OUTPUTS: [],
        Asset(name="someone/else", uri="file:///elsewhere"): []}, "params": {"jobs": []}}
    summary = export_tasks.refresh(triggered, str(path))
    assert list(summary["jobs"]) == ["exported"]
    [result] = summary["jobs"]["exported"]
    assert result["written"] and result["runs"] == 2 and result["rows"] > 0
    table = pq.read_table(exports / CHARGE_FILE)
    assert table.num_rows == result["rows"] and set(table.column("me").to_pylist()) == {CHARGE}
    # the next night brought nothing new: nothing rewritten
    again = export_tasks.refresh({"params": {"jobs": []}}, str(path))
    assert [r["written"] for r in again["jobs"]["exported"]] == [False]
    with pytest.raises(InputError, match="job 'plain' has no export"):
        export_tasks.refresh({"params": {"jobs": ["plain"]}}, str(path))
