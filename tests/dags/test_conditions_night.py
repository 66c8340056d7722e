"""A night whose conditions task fails: the maps land, completeness still runs and fails the
night naming the runs without conditions; the next night writes them (resumed) and passes.
The DAG's tasks are called in order as the DAG runs them, against the emulator."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import orjson
import pyarrow.parquet as pq
import pytest

from dialsflow.airflow.failures import TaskFailed
from dialsflow.errors import CompletenessFailed, ConditionsFailed
from dialsflow.store.layout import conditions_file, conditions_runs
from dialsflow_emulator.cli import connection_env
from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.world import build_world

ZB = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
ME = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"
WORLD = build_world("demo", 1)
FIRST_GOLDEN = min(c.published_at for c in WORLD.cert_files
                   if c.path.endswith("_Golden.json") and "/Cert_" in c.path)
NIGHT = (FIRST_GOLDEN + timedelta(days=1)).replace(hour=3, minute=0, second=0)


def context(night, run_id: str) -> dict:
    return {"params": {"jobs": [], "runs": None, "force": False, "test": False},
            "data_interval_start": night - timedelta(days=1), "data_interval_end": night,
            "dag_run": SimpleNamespace(run_id=run_id, run_after=night)}


@pytest.fixture
def world(tmp_path, monkeypatch):
    (tmp_path / "datasets.json").write_bytes(orjson.dumps([ZB]))
    (tmp_path / "mes.json").write_bytes(orjson.dumps([ME + "$"]))
    job = {"name": "zb", "workspace": "tracker", "datasets_file": "datasets.json",
           "mes_file": "mes.json", "me_type": "h1d", "output": str(tmp_path / "out"),
           "certification": {"class": "Collisions24", "kind": "golden"},
           "oms": {"stable_beam": True}, "completeness_tolerance": 1.0}
    (tmp_path / "jobs.json").write_bytes(orjson.dumps({"jobs": [job]}))
    with EmulatorProcess("--now", NIGHT.isoformat()) as emu:
        env = connection_env(emu.host, emu.port)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("DIALSFLOW_JOBS_FILE", str(tmp_path / "jobs.json"))
        yield SimpleNamespace(emu=emu, env=env, out=tmp_path / "out")


def test_a_failed_conditions_task_fails_the_night_and_the_next_one_resumes(world, monkeypatch):
    from dialsflow.airflow import tasks

    config = tasks.load_config(context(NIGHT, "night1"))
    plan = tasks.discover(config)
    due = sorted({r for unit in plan["units"] for r in unit["runs"]})
    assert due
    results = [tasks.ingest(unit, config) for unit in plan["units"]]
    oms = orjson.loads(world.env["AIRFLOW_CONN_OMS_DEFAULT"])
    with monkeypatch.context() as broken:  # OMS refuses our credentials tonight
        broken.setenv("AIRFLOW_CONN_OMS_DEFAULT",
                      orjson.dumps({**oms, "password": "wrong"}).decode())
        # a known error: the task ends with its one line (failures.TaskFailed)
        with pytest.raises(TaskFailed, match=r"job zb: .* refused the client credentials") \
                as failed:
            tasks.conditions(config, plan)
        assert isinstance(failed.value.error, ConditionsFailed)
    with pytest.raises(TaskFailed) as info:
        tasks.completeness(config, plan, results)
    assert isinstance(info.value.error, CompletenessFailed)
    assert f"run {due[0]}: no per-LS OMS conditions table" in str(info.value)
    report = orjson.loads(next((world.out / "_reports").glob("*.json")).read_bytes())
    assert report["conditions"]["not_written"] == due
    assert conditions_runs(world.out) == []

    # the next night has nothing due: the runs with maps and no table are written anyway
    later = NIGHT + timedelta(hours=1)
    config = tasks.load_config(context(later, "night2"))
    plan = tasks.discover(config)
    assert plan["units"] == []
    done = tasks.conditions(config, plan)
    assert done["zb"]["written"] == due and conditions_runs(world.out) == due
    assert tasks.completeness(config, plan, [])["zb"]["verdict"].startswith("complete")

    # a table that no longer matches its entry fails the night, and is written again
    victim = conditions_file(world.out, due[0])
    victim.write_bytes(victim.read_bytes()[:-10])
    config = tasks.load_config(context(later + timedelta(hours=1), "night3"))
    plan = tasks.discover(config)
    with pytest.raises(TaskFailed, match=f"run {due[0]}: no per-LS OMS conditions") as info:
        tasks.completeness(config, plan, [])
    assert isinstance(info.value.error, CompletenessFailed)
    assert tasks.conditions(config, plan)["zb"]["written"] == [due[0]]
    assert pq.read_table(victim).num_rows > 0
