"""What is due, against the emulator's truth: certified, in DIALS, ended in the window."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from dialsflow.config.jobs import CertificationChoice, Job, load_jobs
from dialsflow.config.runs import RunSelection
from dialsflow.errors import InputError
from dialsflow.pipeline.discovery import JobPlan, dataset_era, find_due
from dialsflow.pipeline.units import Unit
from dialsflow.store.layout import UnitKey, run_file
from dialsflow.store.manifest import Manifest, RunEntry
from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.world import utc

from ...clients import caf_client, dials_client, oms
from ...expected import ZB
from ...expected import due_from_truth as expected

EXPRESS = "/StreamExpress/Run2024C-Express-v1/DQMIO"
LATER = "2024-04-25T12:00:00Z"  # golden covers the held-back runs; one still in DIALS ingestion


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> dict[str, Job]:
    with pytest.MonkeyPatch.context() as env:  # the demo's outputs are relative
        env.setenv("DIALSFLOW_OUTPUT_ROOT", str(tmp_path_factory.mktemp("out")))
        return load_jobs(Path(__file__).resolve().parents[3] / "include" / "jsons" / "jobs.json")


@pytest.fixture(scope="module")
def later() -> Iterator[EmulatorProcess]:
    with EmulatorProcess("--now", LATER) as emu:
        yield emu


def run_discover(emu: EmulatorProcess, job: Job, start, end, *, via: str = "direct",
                 manifest: Manifest | None = None, **kwargs) -> JobPlan:
    dials = dials_client(emu, job.workspace)
    with caf_client(emu, job.certification.cert_class, job.certification.kind) as caf:
        return find_due(job, start, end, dials=dials, oms=oms(emu, via, dials), caf=caf,
                        manifest=manifest or Manifest(Path("/nonexistent")), **kwargs)


def tracker_mes(truth: dict, job: Job) -> dict[str, int]:
    return {m["me"]: m["me_id"] for m in truth["workspaces"][job.workspace]["mes"]
            if any(re.search(p, m["me"]) for p in job.me_patterns)}


# --------------------------------------------------------------------------- due / pending


def test_default_clock_due_equals_truth(emulator, truth, jobs):
    job = jobs["demo_tracker"]
    now = utc(truth["now"])
    plan = run_discover(emulator, job, now - timedelta(days=1), now)
    due, pending = expected(truth, job, now - timedelta(days=1), now)
    assert len(due) >= 10 and not pending
    mes = tracker_mes(truth, job)
    assert len(mes) == 2
    assert [(u["me"], u["me_id"], u["dim"], u["runs"]) for u in plan.units] == \
        [(me, me_id, 2, due) for me, me_id in mes.items()]
    assert all(u["dataset"] == ZB and u["dataset_id"] == 15102369 for u in plan.units)
    never = set(truth["planted"]["never_certified_runs"])
    skipped = {s["run"]: s["reason"] for s in plan.skipped}
    assert never <= set(skipped)  # all of them ended in the lookback
    assert never.isdisjoint(plan.due_runs[ZB])
    assert plan.pending == [] and plan.certification["name"] == \
        truth["certification"]["golden_latest"].split("/")[-1]


@pytest.mark.parametrize("via", ["direct", "dials"])
def test_later_clock_pending_and_held_back(later, jobs, via):
    truth = later.truth()
    job = jobs["demo_tracker"]
    now = utc(truth["now"])
    plan = run_discover(later, job, now - timedelta(days=1), now, via=via)
    due, pending = expected(truth, job, now - timedelta(days=1), now)
    assert plan.due_runs == {ZB: due}
    assert {p["run"]: p["dataset"] for p in plan.pending} == {n: ZB for n in pending}
    held = truth["planted"]["held_back_in_dials"]
    reasons = {p["run"]: p["reason"] for p in plan.pending}
    for run, kind in pending.items():
        assert kind in reasons[run] or (kind == "DIALS" and "not in DIALS yet" in
                                        reasons[run]), reasons[run]
    # one held-back run has arrived in DIALS by now, the other is still being ingested
    assert {r for r in held if r in due} and {r for r in held if r in pending}
    copy_error = {int(r) for r, info in next(d for d in truth["datasets"] if d["dataset"] == ZB)
                  ["runs"].items() if any(f["status"] == "COPY_ERROR" for f in info["files"])}
    assert copy_error and copy_error <= set(due)


def test_window_and_lookback_bound_the_runs(emulator, truth, jobs):
    job = replace(jobs["demo_tracker"], lookback_days=0)
    start, end = utc("2024-04-17T00:00:00Z"), utc("2024-04-18T00:00:00Z")
    plan = run_discover(emulator, job, start, end)
    due, _ = expected(truth, job, start, end)
    assert plan.due_runs == {ZB: due}
    assert due and all(start <= utc(r["end_time"]) < end for r in truth["runs"]
                       if r["run_number"] in due)
    assert plan.window_start == "2024-04-17T00:00:00Z"
    with_lookback = run_discover(emulator, replace(job, lookback_days=1), start, end)
    assert set(due) < set(with_lookback.due_runs[ZB])


def test_dcs_only_certification_of_express(emulator, truth, jobs):
    job = replace(jobs["demo_tracker"], dataset_patterns=(EXPRESS,),
                  me_patterns=("PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1",), me_type="h1d",
                  certification=CertificationChoice("Collisions24", "dcs"), lookback_days=3)
    now = utc(truth["now"])
    plan = run_discover(emulator, job, now - timedelta(days=1), now)
    assert plan.certification["name"].endswith("_DCSOnly_TkPx.json")
    stable = {r["run_number"] for r in truth["runs"] if r["stable_beam"] and r["ended"]}
    due, pending = expected(truth, job, now - timedelta(days=1), now, EXPRESS, stable)
    assert plan.due_runs == {EXPRESS: due} and not pending
    bad = {r["run_number"] for r in truth["runs"] if r["bad"]}
    assert bad & set(due)  # DCS-only certifies runs the Golden JSON excludes


def test_ecal_job_mixes_1d_and_2d(emulator, truth, jobs):
    job = jobs["demo_ecal"]
    now = utc(truth["now"])
    plan = run_discover(emulator, job, now - timedelta(days=1), now)
    due, _ = expected(truth, job, now - timedelta(days=1), now)
    assert sorted((u["workspace"], u["dim"]) for u in plan.units) == [("ecal", 1), ("ecal", 2)]
    assert all(u["runs"] == due for u in plan.units)
    with pytest.raises(InputError, match="is for workspace 'ecal' but the DIALS client talks "
                                         "to 'tracker'"):
        find_due(job, now, now, dials=dials_client(emulator), oms=oms(emulator, "direct"),
                 caf=caf_client(emulator), manifest=Manifest(Path("/nonexistent")))


# --------------------------------------------------------------------------- manifest, force


def record(manifest: Manifest, unit: dict, run: int, *, complete: bool = True,
           size: int = 10, written: int = 10) -> None:
    key = UnitKey(unit["workspace"], unit["dataset"], unit["me"])
    path = run_file(manifest.outdir, key, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * written)
    manifest.record(RunEntry(unit["workspace"], unit["dataset"], unit["dataset_id"], unit["me"],
                             unit["me_id"], unit["dim"], run, 5, [[1, 5]], size, "0" * 64,
                             "2024-04-24T00:00:00Z", complete))


def test_complete_runs_are_no_longer_due_unless_forced(emulator, truth, jobs, tmp_path):
    job = jobs["demo_tracker"]
    now = utc(truth["now"])
    window = (now - timedelta(days=1), now)
    first = run_discover(emulator, job, *window)
    l1, l2 = first.units
    runs = l1["runs"]
    manifest = Manifest(tmp_path)
    for run in runs[:3]:
        record(manifest, l1, run)
    record(manifest, l1, runs[3], complete=False)  # --test output: not complete
    record(manifest, l1, runs[4], written=7)  # file does not have the recorded size
    record(manifest, l2, runs[0])
    plan = run_discover(emulator, job, *window, manifest=manifest)
    by_me = {u["me"]: u["runs"] for u in plan.units}
    assert by_me == {l1["me"]: runs[3:], l2["me"]: runs[1:]}
    assert {u["me"]: u["complete"] for u in plan.units} == {l1["me"]: runs[:3],
                                                            l2["me"]: runs[:1]}
    assert plan.already_complete == 4
    forced = run_discover(emulator, job, *window, manifest=manifest, force=True)
    assert [u["runs"] for u in forced.units] == [runs, runs]
    assert forced.already_complete == 0 and forced.force
    for run in runs:
        record(manifest, l1, run)
        record(manifest, l2, run)
    done = run_discover(emulator, job, *window, manifest=manifest)
    assert [(u["runs"], u["complete"]) for u in done.units] == [([], runs), ([], runs)]
    assert done.due_runs == {}


# --------------------------------------------------------------------------- explicit runs


def test_explicit_runs_bypass_the_window_not_certification(emulator, truth, jobs):
    job = jobs["demo_tracker"]
    golden = sorted(int(r) for r in truth["certification"]["golden_runs"])
    bad = next(r["run_number"] for r in truth["runs"] if r["bad"])
    unstable = next(r["run_number"] for r in truth["runs"] if not r["stable_beam"])
    far = (utc("2024-06-01T00:00:00Z"), utc("2024-06-02T00:00:00Z"))
    assert run_discover(emulator, job, *far).units == []
    plan = run_discover(emulator, job, *far,
                        runs=RunSelection.of({golden[0], golden[-1], bad, unstable, 400000}))
    assert plan.due_runs == {ZB: [golden[0], golden[-1]]}
    assert plan.window_start is None and plan.selection is not None
    reasons = {s["run"]: s["reason"] for s in plan.skipped}
    assert reasons == {bad: f"not certified in {plan.certification['name']}",
                       unstable: "no stable beams (OMS stable_beam false)",
                       400000: "unknown to OMS"}
    ranged = run_discover(emulator, job, *far, runs=RunSelection(golden[0], golden[4]))
    assert ranged.due_runs == {ZB: golden[:5]}
    assert ranged.selection == f"{golden[0]}-{golden[4]}"


# --------------------------------------------------------------------------- the plan as data


def test_plan_is_small_json_and_units_convert(emulator, truth, jobs):
    job = jobs["demo_tracker"]
    now = utc(truth["now"])
    plan = run_discover(emulator, job, now - timedelta(days=1), now)
    data = orjson.loads(orjson.dumps(plan.to_dict()))
    assert JobPlan.from_dict(data) == plan
    assert len(orjson.dumps(plan.units[0])) < 1000
    for unit in data["units"]:
        assert set(unit) == {"workspace", "dataset", "dataset_id", "me", "me_id", "dim", "runs",
                             "complete"}
        converted = Unit.from_json(unit)
        assert isinstance(converted, Unit) and converted.endpoint == "th2/"
        assert converted.key == UnitKey("tracker", ZB, unit["me"])
        assert converted.to_json() == {k: v for k, v in unit.items() if k != "complete"}
    assert plan.due_units() == [Unit.from_json(u) for u in data["units"]]
    text = plan.summary()
    assert text.splitlines()[0].startswith("job demo_tracker (tracker): runs ended in [")
    assert f"due {ZB}: " in text and "skipped run" in text


def test_runs_only_count_for_datasets_of_their_era():
    assert dataset_era(ZB) == "Run2024C"
    assert dataset_era("/StreamExpress/Run2024I-Express-v2/DQMIO") == "Run2024I"
    assert dataset_era("not-a-dataset") is None
