"""A season in fast-forward: every night of the demo world's season runs the DAG's tasks in
order (load_config → discover → ingest per unit → completeness), the emulator's clock moved
to each night. Certification comes weeks to months after the runs, DIALS lags, one file is
stuck for ever: at the end every run of the final Golden JSON that the job's OMS filters
want is in parquet exactly once, and every other run is in the plan with its reason."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import orjson
import pyarrow.parquet as pq
import pytest

from dialsflow.airflow.failures import TaskFailed
from dialsflow.pipeline.verdict import WITHIN_TOLERANCE
from dialsflow.store.layout import UnitKey, certification_table, conditions_runs, run_file
from dialsflow.store.manifest import Manifest
from dialsflow_emulator.cli import connection_env
from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.world import utc

ZB = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
ME = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"
MIN_DAYS = 120
JOB = "season"


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    """The emulator, a one-job jobs file and the environment the tasks read."""
    folder = tmp_path_factory.mktemp("season")
    (folder / "datasets.json").write_bytes(orjson.dumps([ZB]))
    (folder / "mes.json").write_bytes(orjson.dumps([ME + "$"]))
    job = {"name": JOB, "workspace": "tracker", "datasets_file": "datasets.json",
           "mes_file": "mes.json", "me_type": "h1d", "output": str(folder / "out"),
           "certification": {"class": "Collisions24", "kind": "golden"},
           "oms": {"stable_beam": True}, "completeness_tolerance": 1.0}
    (folder / "jobs.json").write_bytes(orjson.dumps({"jobs": [job]}))
    with EmulatorProcess() as emu, pytest.MonkeyPatch.context() as env:
        for key, value in connection_env(emu.host, emu.port).items():
            env.setenv(key, value)
        env.setenv("DIALSFLOW_JOBS_FILE", str(folder / "jobs.json"))
        yield SimpleNamespace(emu=emu, out=folder / "out")


def night_context(night, run_id: str) -> dict:
    return {"params": {"jobs": [], "runs": None, "force": False, "test": False},
            "data_interval_start": night - timedelta(days=1), "data_interval_end": night,
            "dag_run": SimpleNamespace(run_id=run_id, run_after=night)}


def test_a_season_night_by_night(season):
    from dialsflow.airflow import tasks

    emu = season.emu
    truth = emu.truth()
    runs = truth["runs"]
    first_night = utc(runs[0]["start_time"]).replace(hour=3, minute=0, second=0) + \
        timedelta(days=1)
    releases = [utc(f["published_at"]) for f in truth["certification"]["files"]]
    last_night = max(max(releases), utc(runs[-1]["end_time"])) + timedelta(days=2)
    nights = (last_night - first_night).days + 1
    assert nights >= MIN_DAYS, f"the demo season is only {nights} nights long"

    written: Counter[int] = Counter()
    refreshes: list[bool] = []
    verdicts: Counter[str] = Counter()
    plan = None
    for i in range(nights):
        night = first_night + timedelta(days=i)
        emu.set_now(night.isoformat())
        config = tasks.load_config(night_context(night, f"scheduled__{night.isoformat()}"))
        plan = tasks.discover(config)
        results = []
        for unit in plan["units"]:
            try:
                results.append(tasks.ingest(unit, config))
            except TaskFailed:
                results.append(None)
        for r in results:
            written.update(r["written"] if r else ())
        try:  # beside ingest in the DAG; its failure fails completeness
            tasks.conditions(config, plan)
        except TaskFailed as exc:
            verdicts[f"conditions failed: {exc}"[:60]] += 1
        refreshes.append(tasks.certification(config)[JOB]["table_written"])
        try:
            out = tasks.completeness(config, plan, results)
            verdicts.update(v["verdict"] for v in out.values())
        except TaskFailed as exc:
            verdicts[f"failed: {exc}"[:60]] += 1

    final = emu.truth()
    golden = {int(r) for r in final["certification"]["golden_runs"]}
    stable = {r["run_number"] for r in runs if r["stable_beam"]}
    expected = golden & stable
    key = UnitKey("tracker", ZB, ME)
    manifest = Manifest(season.out)
    on_disk = manifest.complete_runs(key)

    # every wanted run of the final Golden JSON is in parquet, written once, whole
    assert expected <= on_disk, f"missing: {sorted(expected - on_disk)}"
    assert max(written.values()) == 1, [r for r, n in written.items() if n > 1]
    late = {r for r in final["planted"]["late_certified_runs"]} & expected
    assert late and late <= on_disk  # certified 60+ days after they ended
    ds = next(d for d in final["datasets"] if d["dataset"] == ZB)["runs"]
    for run in sorted(expected):
        table = pq.read_table(run_file(season.out, key, run), columns=["ls_number"])
        ls = table.column("ls_number").to_pylist()
        assert len(ls) == len(set(ls)), run
        entry = manifest.get(key, run)
        assert entry.certification and entry.certification.endswith("_Golden.json")
        dials = [n for a, b in ds[str(run)]["dials_ls"] for n in range(a, b + 1)]
        if not entry.upstream_stuck:
            assert sorted(ls) == dials, run

    # every ingested run has its per-LS conditions, written once (ended runs only)
    assert set(conditions_runs(season.out)) == on_disk
    assert all(verdict in ("complete", WITHIN_TOLERANCE) or verdict.startswith("complete")
               for verdict in verdicts), verdicts

    # the per-LS certification follows every release without rewriting a map: at the end
    # it is the last Golden JSON's, LS by LS, for every run on disk (the decertified one too)
    cert = pq.read_table(certification_table(season.out)).to_pylist()
    final_golden = final["certification"]["golden_runs"]
    for run in on_disk:
        mine = {r["ls_number"] for r in cert if r["run_number"] == run and r["golden"]}
        want = {n for a, b in final_golden.get(str(run), []) for n in range(a, b + 1)}
        have = {r["ls_number"] for r in cert if r["run_number"] == run}
        assert mine == want & have, run
    decertified = set(final["planted"]["decertified_runs"]) & on_disk
    assert decertified and all(not r["golden"] for r in cert if r["run_number"] in decertified)
    assert 1 < sum(refreshes) < nights  # rewritten when something changed, not every night

    # every other run of the world has a status and a reason in the last night's plan
    notes = plan["plans"][0]
    reasons = {r["run"]: r for r in notes["runs"] if r["dataset"] == ZB}
    for r in runs:
        n = r["run_number"]
        if n in on_disk:
            continue
        assert n in reasons and reasons[n]["status"] in ("waiting", "excluded"), n
        assert reasons[n]["reason"], n
    # the run with a file stuck STARTED for ever: ingested once it was stuck long enough,
    # with its gap, and still said to be so
    stuck = final["planted"]["stuck_files"][0]["run"]
    assert stuck in on_disk and manifest.get(key, stuck).upstream_stuck
    assert reasons[stuck]["status"] == "complete"
    assert reasons[stuck]["reason"].startswith("ingested with a gap: 1 DIALS file(s) still")
    print(f"season: {nights} nights, {len(on_disk)} runs ingested, {len(late)} certified 60+ "
          f"days late, verdicts {dict(verdicts)}", file=sys.stderr)

