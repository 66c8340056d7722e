"""The nightly DAG end to end under `airflow dags test`, against the emulator.

Two consecutive nights with the world clock moved in between, then a planted parquet loss,
then an operator's forced re-ingestion of a run list. Each step builds on the previous
one's output, so the tests of this module run in file order and share one output root.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from dialsflow.config.jobs import load_jobs
from dialsflow.store.layout import UnitKey, run_file
from dialsflow.store.manifest import Manifest, RunEntry, file_sha256
from dialsflow_emulator.process import EmulatorProcess
from localdev.airflow_home import LocalAirflow

from ..expected import ZB, due_from_truth

ROOT = Path(__file__).resolve().parents[2]
CHARGE = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"
BPIX = ("PixelPhase1/Phase1_MechanicalView/PXBarrel/digi_occupancy_per_SignedModuleCoord_per_"
        "SignedLadderCoord_PXLayer_1")
# Night 1: the Golden JSON of 2024-04-25 certifies the held-back runs; one is still being
# ingested by DIALS (pending), and run 379494 has a file DIALS failed to copy.
NIGHT1 = "2024-04-25T12:00:00+00:00"
NIGHT2 = "2024-04-26T12:00:00+00:00"
HELD_BACK_PENDING = 379488
COPY_ERROR_RUN, COPY_ERROR_LS = 379494, list(range(18, 29))


def interval_of(logical: str) -> tuple[datetime, datetime]:
    """The data interval Airflow infers for a manual run at `logical` (cron 03:00 UTC)."""
    t = datetime.fromisoformat(logical).astimezone(UTC)
    end = t.replace(hour=3, minute=0, second=0, microsecond=0)
    end = end if end <= t else end - timedelta(days=1)
    return end - timedelta(days=1), end


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nightly")


@pytest.fixture(scope="module")
def jobs_file(base) -> Path:
    (base / "mes.json").write_bytes(orjson.dumps([CHARGE + "$", BPIX + "$"]))
    (base / "jobs.json").write_bytes(orjson.dumps({"jobs": [{
        "name": "zb_tracker", "workspace": "tracker",
        "datasets_file": str(ROOT / "include/jsons/datasets_zerobias_2024c.json"),
        "mes_file": "mes.json", "output": str(base / "out" / "zb_tracker"),
        "certification": {"class": "Collisions24", "kind": "golden"},
        "oms": {"stable_beam": True}, "lookback_days": 10, "completeness_tolerance": 0.3,
    }]}))
    return base / "jobs.json"


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with EmulatorProcess("--now", NIGHT1) as e:
        yield e


@pytest.fixture(scope="module")
def airflow(base, emu, jobs_file) -> LocalAirflow:
    return LocalAirflow(base / "home", emu, base / "out", jobs_file=jobs_file,
                        extra_env={"DIALSFLOW_RETRY_DELAY_S": "1"}).setup()


@pytest.fixture(scope="module")
def job(jobs_file):
    return load_jobs(jobs_file)["zb_tracker"]


def entries(job) -> dict[tuple[str, int], RunEntry]:
    manifest = Manifest(job.output)
    return {(me, e.run): e for me in (CHARGE, BPIX)
            for e in manifest.entries(UnitKey("tracker", ZB, me))}


def latest_report(job) -> dict:
    reports = sorted((job.output / "_reports").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return orjson.loads(reports[-1].read_bytes())


def run_dag(airflow: LocalAirflow, logical: str, conf: dict | None = None):
    out = airflow.dags_test(logical, conf)
    return out, out.stdout + out.stderr


def test_night1_ingests_exactly_the_due_runs_through_faults(airflow, emu, job):
    emu.reset_stats()
    emu.set_faults(fault_rate=0.1)
    try:
        out, log = run_dag(airflow, NIGHT1)
    finally:
        emu.set_faults(fault_rate=0.0)
    assert out.returncode == 0, log[-4000:]
    faults = emu.stats()["faults"]
    assert sum(faults.values()) > 0  # transient faults were injected and retried away
    due, pending = due_from_truth(emu.truth(), job, *interval_of(NIGHT1))
    assert HELD_BACK_PENDING in pending and COPY_ERROR_RUN in due
    got = entries(job)
    assert sorted(got) == sorted((me, run) for me in (CHARGE, BPIX) for run in due)
    assert all(e.complete for e in got.values())
    report = latest_report(job)
    assert report["verdict"].startswith("complete")
    assert {p["run"] for p in report["pending"]} == set(pending)
    gaps = {(u["me"], r["run"]): r["upstream_gap"] for u in report["completeness"]["units"]
            for r in u["runs"] if r["upstream_gap"]}
    assert gaps[(CHARGE, COPY_ERROR_RUN)] == [[COPY_ERROR_LS[0], COPY_ERROR_LS[-1]]]
    planted = {(p["run"], tuple(p["ls"])) for p in emu.truth()["planted"]["dials_missing_ls"]
               if p["dataset_id"] == 15102369 and p["run"] in due}
    assert planted <= {(run, tuple(n for a, b in ranges for n in range(a, b + 1)))
                       for (me, run), ranges in gaps.items() if me == BPIX}
    assert all(r["counts"]["ours"] == 0 for u in report["completeness"]["units"]
               for r in u["runs"])


def test_night2_picks_up_the_pending_run_and_nothing_twice(airflow, emu, job):
    before = entries(job)
    emu.set_now(NIGHT2)
    out, log = run_dag(airflow, NIGHT2)
    assert out.returncode == 0, log[-4000:]
    after = entries(job)
    assert set(after) - set(before) == {(me, HELD_BACK_PENDING) for me in (CHARGE, BPIX)}
    assert all(after[k] == before[k] for k in before)  # untouched: same time, same checksum
    due, pending = due_from_truth(emu.truth(), job, *interval_of(NIGHT2))
    assert not pending and set(due) == {run for _, run in after}


def test_planted_parquet_loss_fails_the_run(airflow, emu, job):
    victim = 379471
    key = UnitKey("tracker", ZB, BPIX)
    path = run_file(job.output, key, victim)
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 2), path)  # two lumisections lost
    manifest = Manifest(job.output)
    entry = manifest.get(key, victim)
    manifest.record(RunEntry(**{**entry.__dict__, "rows": entry.rows - 2,
                                "bytes": path.stat().st_size,
                                "sha256": file_sha256(path)}))  # the entry vouches for it
    out, log = run_dag(airflow, "2024-04-26T13:00:00+00:00")
    assert out.returncode == 1
    assert f"run {victim}: parquet lacks 2 LS that DIALS has" in log
    report = latest_report(job)
    assert report["verdict"].startswith("FAILED") and report["failures"]


def test_forced_run_list_reingests_exactly_those_runs(airflow, emu, job):
    before = entries(job)
    out, log = run_dag(airflow, "2024-04-26T14:00:00+00:00",
                       {"runs": "379471,379477", "force": True})
    assert out.returncode == 0, log[-4000:]
    after = entries(job)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {(me, run) for me in (CHARGE, BPIX) for run in (379471, 379477)}
    healed = after[(BPIX, 379471)]
    assert healed.rows == before[(BPIX, 379471)].rows + 2
    assert pq.read_metadata(run_file(job.output, healed.key, 379471)).num_rows == healed.rows
    assert latest_report(job)["runs"] == "379471,379477"
