"""The real DAG on the production topology (natively): `dials_ingest` triggered through REST
on PostgreSQL + Celery, against the emulator's demo world. One night is ingested and
checked (parquet, completeness report, the run's note), its output asset triggers
`dials_export` (the job exports), one ME is made to fail for good and its mapped task's
log is read through REST, then a two-day backfill runs each day once.
Alone: `.venv/bin/python -m pytest tests/deploy/test_deployment_e2e.py -s`."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
import requests

from deploy.rest import AirflowClient
from dialsflow.config.jobs import load_jobs
from dialsflow.pipeline.export import exported_runs
from dialsflow.pipeline.units import short_dataset
from dialsflow.store.layout import UnitKey, dialstools_name, unit_dir
from dialsflow.store.manifest import Manifest

from ..expected import morning_after_release
from .conftest import no_scheduled_runs

pytestmark = [pytest.mark.deploy, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DAG = "dials_ingest"
EXPORT_DAG = "dials_export"
JOB = "demo_tracker"  # include/jsons/jobs.json: BPix L1 and L2 maps of ZeroBias
NOW = morning_after_release(1)  # emulator clock: the second Golden release certifies 4 runs
NIGHT = NOW.replace("+00:00", "Z")  # a manual run: data interval [day-1 03:00, day 03:00)
DAY = NOW[:10]
BEFORE = (date.fromisoformat(DAY) - timedelta(days=1)).isoformat()
FAILING_ME = "PXLayer_2$"


def _jobs_with_export(folder: Path) -> Path:
    """The demo jobs file, its lists by absolute path, JOB exporting to exports/JOB."""
    doc = json.loads((ROOT / "include" / "jsons" / "jobs.json").read_text())
    for job in doc["jobs"]:
        for key in ("datasets_file", "mes_file"):
            job[key] = str(ROOT / "include" / "jsons" / job[key])
        if job["name"] == JOB:
            job["export"] = {"to": f"exports/{JOB}", "format": "dialstools"}
    path = folder / "jobs.json"
    path.write_bytes(orjson.dumps(doc))
    return path


def _wait_export(api: AirflowClient, timeout: float = 180) -> dict:
    """The first `dials_export` run, finished (the scheduler creates it on the asset event)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api.runs(EXPORT_DAG)
        if runs and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(2)
    raise AssertionError(f"no finished {EXPORT_DAG} run after {timeout:.0f} s: "
                         f"{api.runs(EXPORT_DAG)}")


def _backfill_runs(api: AirflowClient) -> list[dict]:
    return [r for r in api.runs(DAG) if r["run_type"] == "backfill"]


def test_nightly_dag_on_celery_with_emulator(start_deployment, monkeypatch, tmp_path) -> None:
    t0 = time.monotonic()
    jobs_file = _jobs_with_export(tmp_path)
    started = start_deployment("--emulator", "--emulator-arg=--now", f"--emulator-arg={NOW}",
                               *no_scheduled_runs(NOW), "--jobs-file", str(jobs_file),
                               "--env", "DIALSFLOW_RETRIES=0",
                               "--env", "DIALSFLOW_RETRY_DELAY_S=1")
    dep = started.dep
    api = AirflowClient(dep.url, "admin", dep.admin_password)
    output = Path(dep.home) / "output"
    monkeypatch.setenv("DIALSFLOW_OUTPUT_ROOT", str(output))  # as the deployment's components
    job = load_jobs(jobs_file)[JOB]
    timings: dict[str, float] = {"start": time.monotonic() - t0}
    try:
        api.wait_dag(DAG, timeout=90)
        assert api.get("importErrors")["total_entries"] == 0
        api.unpause(DAG)  # no scheduled run: the DAG ends the day after NOW
        api.wait_dag(EXPORT_DAG, timeout=90)
        api.unpause(EXPORT_DAG)  # scheduled on JOB's output asset only

        # -- one night ------------------------------------------------------------------
        t = time.monotonic()
        run = api.trigger(DAG, logical_date=NIGHT, conf={"jobs": [JOB]})
        assert (run["data_interval_start"], run["data_interval_end"]) == \
            (f"{BEFORE}T03:00:00Z", f"{DAY}T03:00:00Z")
        done = api.wait_run(DAG, run["dag_run_id"], timeout=300)
        timings["night"] = time.monotonic() - t
        tis = api.task_instances(DAG, run["dag_run_id"])
        assert done["state"] == "success", {(t["task_id"], t["map_index"]): t["state"]
                                            for t in tis}
        ingests = [ti for ti in tis if ti["task_id"] == "ingest"]
        assert ingests and all(ti["state"] == "success" and ti["try_number"] == 1
                               for ti in ingests)
        reports = list((output / JOB / "_reports").glob("manual__*.json"))
        assert len(reports) == 1, reports
        report = json.loads(reports[0].read_text())
        assert report["run_id"] == run["dag_run_id"] and report["failures"] == []
        assert report["verdict"].startswith("complete")
        # the scheduler's listener wrote the verdict into the run's note (the grid shows it)
        assert (done["note"] or "").startswith(f"**{JOB}**: complete"), done
        assert len(report["ingested"]) == len(ingests)  # one entry per dataset × ME unit
        written = {(i["me"], r) for i in report["ingested"] for r in i["written"]}
        assert written, "the night ingested nothing"
        dataset = report["ingested"][0]["dataset"]
        for me, run_number in sorted(written)[:3]:
            folder = unit_dir(output / JOB, UnitKey(job.workspace, dataset, me))
            table = pq.read_table(folder / f"run_{run_number}.parquet")
            assert table.num_rows > 0
            assert set(table.column("run_number").to_pylist()) == {run_number}

        # -- the night's asset event runs dials_export: JOB's dialstools files, run by run
        t = time.monotonic()
        export = _wait_export(api)
        timings["export"] = time.monotonic() - t
        assert export["state"] == "success" and export["run_type"] == "asset_triggered", export
        for me in {me for me, _ in written}:
            path = output / "exports" / JOB / dialstools_name(dataset, me)
            assert exported_runs(path) == sorted(r for m, r in written if m == me), path

        # -- one ME fails for good: its mapped task's log names dataset, ME, run, cause ---
        r = requests.put(f"{dep.emulator_url}/_emulator/faults",
                         json={"failing_me": FAILING_ME}, timeout=10)
        r.raise_for_status()
        t = time.monotonic()
        failing_run = sorted(written)[0][1]
        run2 = api.trigger(DAG, logical_date=f"{DAY}T13:00:00Z",
                           conf={"jobs": [JOB], "force": True, "runs": str(failing_run)})
        done2 = api.wait_run(DAG, run2["dag_run_id"], timeout=300)
        timings["failing night"] = time.monotonic() - t
        assert done2["state"] == "failed"
        tis2 = {(ti["task_id"], ti["map_index"]): ti
                for ti in api.task_instances(DAG, run2["dag_run_id"])}
        failed = [ti for (task, _), ti in tis2.items() if task == "ingest"
                  and ti["state"] == "failed"]
        assert len(failed) == 1 and "PXLayer_2" in (failed[0]["rendered_map_index"] or "")
        assert tis2[("completeness", -1)]["state"] == "failed"  # it ran and failed the run
        log = api.log_text(api.task_log(DAG, run2["dag_run_id"], "ingest",
                                        failed[0]["try_number"], failed[0]["map_index"]))
        short = short_dataset(dataset)  # the grid label's dataset
        cause = [line for line in log.splitlines() if "failed" in line.lower()
                 and short in line and "PXLayer_2" in line and str(failing_run) in line]
        assert cause and any("HTTP 500" in line for line in cause), log[-3000:]
        requests.put(f"{dep.emulator_url}/_emulator/faults", json={"failing_me": None},
                     timeout=10).raise_for_status()

        # -- a two-day backfill: each day runs once --------------------------------------
        manifest = Manifest(output / JOB)
        units = {UnitKey(job.workspace, dataset, me) for me, _ in written}
        before = {(k.me, e.run): e for k in units for e in manifest.entries(k)}
        t = time.monotonic()
        window = {"from_date": f"{BEFORE}T00:00:00Z", "to_date": f"{DAY}T06:00:00Z"}
        dry = api.request("POST", "backfills/dry_run", json={"dag_id": DAG, **window})
        days = sorted(b["logical_date"] for b in dry["backfills"])
        assert days == [f"{BEFORE}T03:00:00Z", f"{DAY}T03:00:00Z"]
        api.backfill(DAG, **window, dag_run_conf={"jobs": [JOB]})
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            mine = _backfill_runs(api)
            if len(mine) == 2 and all(r["state"] in ("success", "failed") for r in mine):
                break
            time.sleep(2)
        timings["backfill"] = time.monotonic() - t
        mine = _backfill_runs(api)
        assert sorted(r["logical_date"] for r in mine) == days, mine
        assert all(r["state"] == "success" for r in mine), [
            (r["dag_run_id"], r["state"], [(ti["task_id"], ti["map_index"], ti["state"])
                                           for ti in api.task_instances(DAG, r["dag_run_id"])])
            for r in mine]
        for r in mine:
            for ti in api.task_instances(DAG, r["dag_run_id"]):
                assert ti["try_number"] == 1, (r["dag_run_id"], ti["task_id"])
        # ... and ingests each run once: the run the failing night lost is fetched by one
        # backfill day only; everything the first night wrote is left as it was
        by_day = [json.loads(p.read_text()) for p in (output / JOB / "_reports").glob(
            "backfill__*.json")]
        assert len(by_day) == 2
        fetched = [(i["me"], run) for rep in by_day for i in rep["ingested"]
                   for run in i["written"]]
        assert sorted(fetched) == sorted(set(fetched))  # nothing twice
        assert {me for me, run in fetched if run == failing_run} <= {
            me for me, _ in written if me.endswith("PXLayer_2")}
        after = {(k.me, e.run): e for k in units for e in manifest.entries(k)}
        assert all(after[key] == entry for key, entry in before.items())
        assert set(after) == set(before) | set(fetched)
    except BaseException:
        print(started.logs())
        raise
    print(f"\nwall time: {', '.join(f'{k} {v:.1f} s' for k, v in timings.items())}, "
          f"total {time.monotonic() - t0:.1f} s (stop follows in the fixture)")
