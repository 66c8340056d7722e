"""The nightly DAG end to end under `airflow dags test`, against the emulator.

Two nights after two Golden releases with the world clock moved in between, then a damaged
parquet file, then an operator's forced re-ingestion of a run list. Each step builds on the
previous one's output, so the tests of this module run in file order and share one output
root.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from dialsflow.config.jobs import load_jobs
from dialsflow.pipeline.verdict import WITH_UPSTREAM_GAPS
from dialsflow.store import conditions
from dialsflow.store.layout import UnitKey, conditions_file, run_file
from dialsflow.store.manifest import Manifest, RunEntry
from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.world import build_world, utc
from localdev.airflow_home import LocalAirflow

from ..expected import ZB, statuses_from_truth

ROOT = Path(__file__).resolve().parents[2]
CHARGE = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"
BPIX = ("PixelPhase1/Phase1_MechanicalView/PXBarrel/digi_occupancy_per_SignedModuleCoord_per_"
        "SignedLadderCoord_PXLayer_1")
WORLD = build_world("demo", 1)
RELEASES = sorted(c.published_at for c in WORLD.cert_files
                  if c.path.endswith("_Golden.json") and "/Cert_" in c.path)
# The mornings after the 4th and 5th Golden releases: the first holds the run with a file
# DIALS failed to copy, the one stuck STARTED for ever and the PARSING_ERROR one.
NIGHT1 = (RELEASES[3] + timedelta(days=1)).replace(hour=12, minute=0, second=0).isoformat()
NIGHT2 = (RELEASES[4] + timedelta(days=1)).replace(hour=12, minute=0, second=0).isoformat()


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
        "oms": {"stable_beam": True}, "completeness_tolerance": 0.3,
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


def conditions_cover_maps(job, truth: dict) -> int:
    """Every ingested run has its conditions table; the LS of its maps without an OMS row
    are exactly the twin's planted gaps, each in a night's report. Returns how many."""
    missing = truth["planted"]["oms_missing_ls"]
    reported: dict[int, set[int]] = {}
    for path in (job.output / "_reports").glob("*.json"):
        for r in orjson.loads(path.read_bytes())["conditions"]["runs"]:
            reported.setdefault(r["run"], set()).update(
                n for a, b in r["map_ls_without_oms_row"] for n in range(a, b + 1))
    gaps = 0
    for (_, run), e in entries(job).items():
        written = conditions.entry(job.output, run)
        assert written is not None and conditions_file(job.output, run).stat().st_size == \
            written.bytes, run
        gap = set(e.ls_numbers) - written.ls_numbers
        assert gap == set(missing.get(str(run), ())) & set(e.ls_numbers), run
        assert gap <= reported.get(run, set()), run
        gaps += len(gap)
    return gaps


def run_dag(airflow: LocalAirflow, logical: str, conf: dict | None = None):
    out = airflow.dags_test(logical, conf)
    return out, out.stdout + out.stderr


def run_note(airflow: LocalAirflow, run_id: str) -> str | None:
    """The note of a DAG run, read from the home's metadata DB."""
    with sqlite3.connect(airflow.home / "airflow.db") as db:
        row = db.execute("SELECT n.content FROM dag_run_note n JOIN dag_run r "
                         "ON r.id = n.dag_run_id WHERE r.run_id = ?", (run_id,)).fetchone()
    return row[0] if row else None


def due_runs(truth: dict) -> set[int]:
    return {r for r, status in statuses_from_truth(truth).items() if status == "due"}


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
    truth = emu.truth()
    due = due_runs(truth)
    planted = truth["planted"]
    stuck = planted["stuck_files"][0]
    copy_error = next(p for p in planted["dials_missing_ls"] if p.get("cause") == "COPY_ERROR")
    assert {stuck["run"], copy_error["run"]} <= due
    got = entries(job)
    assert sorted(got) == sorted((me, run) for me in (CHARGE, BPIX) for run in due)
    assert all(e.complete and e.certification.endswith("_Golden.json") for e in got.values())
    assert {run for (_, run), e in got.items() if e.upstream_stuck} == {stuck["run"]}
    report = latest_report(job)
    # the COPY_ERROR run lacks far more than the tolerance: DIALS says why, so it is reported
    assert report["verdict"] == WITH_UPSTREAM_GAPS
    assert [s["run"] for s in report["plan"]["stuck"]] == [stuck["run"]]
    assert {f["run"]: f["files"] for f in report["plan"]["failed_upstream"]} == {
        copy_error["run"]: {"COPY_ERROR": 1},
        planted["parsing_error_files"][0]["run"]: {"PARSING_ERROR": 1}}
    assert report["plan"]["counts"]["due"] == len(due)
    waiting = {r["run"] for r in report["plan"]["runs"] if r["status"] == "waiting"}
    assert waiting and waiting.isdisjoint(due)
    gaps = {(u["me"], r["run"]): r["upstream_gap"] for u in report["completeness"]["units"]
            for r in u["runs"] if r["upstream_gap"]}
    ls = copy_error["ls"]
    assert gaps[(CHARGE, copy_error["run"])] == [[ls[0], ls[-1]]]
    assert gaps[(BPIX, stuck["run"])] == [[stuck["rows_ls"][1] + 1, stuck["ls"][1]]]
    assert all(r["counts"]["ours"] == 0 for u in report["completeness"]["units"]
               for r in u["runs"])
    # the verdict as the page names it, in the DAG run's note (what the grid shows)
    assert run_note(airflow, report["run_id"]) == f"**{job.name}**: complete with upstream gaps"
    # conditions beside the maps, through the same faults; OMS' gaps reported, not failures
    assert report["conditions"]["runs_checked"] == len(due)
    assert report["conditions"]["not_written"] == []
    assert conditions_cover_maps(job, truth) == 2 * report["conditions"][
        "map_ls_without_oms_row"] > 0


def test_night2_takes_the_next_release_and_nothing_twice(airflow, emu, job):
    before = entries(job)
    emu.set_now(NIGHT2)
    out, log = run_dag(airflow, NIGHT2)
    assert out.returncode == 0, log[-4000:]
    after = entries(job)
    due = due_runs(emu.truth())
    assert {run for _, run in after} == due
    assert set(after) - set(before) == {(me, run) for me in (CHARGE, BPIX)
                                        for run in due - {run for _, run in before}}
    assert all(after[k] == before[k] for k in before)  # untouched: same time, same checksum
    conditions_cover_maps(job, emu.truth())


def test_a_damaged_file_is_fetched_again(airflow, emu, job):
    """A file that no longer matches its manifest entry is not complete: the next night
    fetches it again, whole."""
    victim = min(run for _, run in entries(job))
    key = UnitKey("tracker", ZB, BPIX)
    path = run_file(job.output, key, victim)
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 2), path)  # two lumisections lost
    before = entries(job)
    out, log = run_dag(airflow, (utc(NIGHT2) + timedelta(hours=1)).isoformat())
    assert out.returncode == 0, log[-4000:]
    after = entries(job)
    assert {k for k in after if after[k] != before[k]} == {(BPIX, victim)}
    healed = after[(BPIX, victim)]
    assert pq.read_metadata(path).num_rows == healed.rows == table.num_rows


def test_forced_run_list_reingests_exactly_those_runs(airflow, emu, job):
    before = entries(job)
    chosen = sorted({run for _, run in before})[:2]
    out, log = run_dag(airflow, (utc(NIGHT2) + timedelta(hours=2)).isoformat(),
                       {"runs": ",".join(map(str, chosen)), "force": True})
    assert out.returncode == 0, log[-4000:]
    after = entries(job)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {(me, run) for me in (CHARGE, BPIX) for run in chosen}
    assert latest_report(job)["runs"] == ",".join(map(str, chosen))
