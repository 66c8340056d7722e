"""Every run of a job with its status, against the emulator's truth: certification in force
(whenever runs ended), OMS filters, DBS files against DIALS' file index, the manifest."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from dialsflow.config.jobs import CertificationChoice, Job, OmsFilters, load_jobs
from dialsflow.config.runs import RunSelection
from dialsflow.errors import InputError
from dialsflow.pipeline.discovery import STATUSES, JobPlan, plan_job
from dialsflow.pipeline.units import Unit
from dialsflow.services.caf import CafClient
from dialsflow.services.dbs import DbsClient
from dialsflow.store.layout import UnitKey, run_file
from dialsflow.store.manifest import Manifest, RunEntry
from dialsflow_emulator.cli import connection_env
from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.world import build_world, iso, utc

from ...clients import caf_client, connection, dials_client, oms
from ...expected import ZB, statuses_from_truth

ROOT = Path(__file__).resolve().parents[3]
EXPRESS = "/StreamExpress/Run2024C-Express-v1/DQMIO"
WORLD = build_world("demo", 1)
#: A month after the last Golden release: everything is certified, indexed and settled.
MONTHS_LATER = iso(max(c.published_at for c in WORLD.cert_files) + timedelta(days=30))
OMS_REASONS = ("no stable beams", "recorded lumi", "components not in the run")


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> dict[str, Job]:
    with pytest.MonkeyPatch.context() as env:  # the demo's outputs are relative
        env.setenv("DIALSFLOW_OUTPUT_ROOT", str(tmp_path_factory.mktemp("out")))
        return load_jobs(ROOT / "include" / "jsons" / "jobs.json")


@pytest.fixture(scope="module")
def stable_only(jobs) -> Job:
    """demo_tracker with only the stable-beam filter: the truth can say what it wants."""
    return replace(jobs["demo_tracker"], oms=OmsFilters(stable_beam=True))


@pytest.fixture(scope="module")
def later() -> Iterator[EmulatorProcess]:
    with EmulatorProcess("--now", MONTHS_LATER) as emu:
        yield emu


def dbs_client(emu: EmulatorProcess) -> DbsClient:
    from dialsflow.config.connections import DbsSettings

    return DbsClient(DbsSettings.from_connection(connection(emu, "dbs_default")))


def plan_for(emu: EmulatorProcess, job: Job, *, at=None, via: str = "direct",
             manifest: Manifest | None = None, **kwargs) -> JobPlan:
    dials = dials_client(emu, job.workspace)
    c = job.certification
    with caf_client(emu, c.cert_class, c.kind, energy=c.energy) as caf, dbs_client(emu) as dbs:
        return plan_job(job, at=at or utc(emu.truth()["now"]), dials=dials,
                        oms=oms(emu, via, dials), caf=caf, dbs=dbs,
                        manifest=manifest or Manifest(Path("/nonexistent")), **kwargs)


def statuses(plan: JobPlan, dataset: str = ZB) -> dict[int, str]:
    return {r["run"]: r["status"] for r in plan.runs if r["dataset"] == dataset}


def reasons(plan: JobPlan, dataset: str = ZB) -> dict[int, str | None]:
    return {r["run"]: r["reason"] for r in plan.runs if r["dataset"] == dataset}


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize("via", ["direct", "dials"])
def test_default_clock_statuses_are_the_truths(emulator, truth, stable_only, via):
    plan = plan_for(emulator, stable_only, via=via)
    assert statuses(plan) == statuses_from_truth(truth)
    assert set(statuses(plan).values()) == set(STATUSES) - {"complete"}
    release = next(r for r in truth["certification"]["golden_releases"]
                   if r["moved_at"] is None or utc(r["moved_at"]) > utc(truth["now"]))
    assert plan.certification["files"] == [release["path"].rsplit("/", 1)[1]]
    # every row says why, except plain due ones
    assert all(r["reason"] for r in plan.runs if r["status"] != "due" or r["run"] in
               {s["run"] for s in plan.stuck})
    due = sorted(r for r, s in statuses(plan).items() if s == "due")
    assert [u["runs"] for u in plan.units] == [due, due]  # two BPix MEs


def test_runs_certified_months_after_they_ended_are_due(later, stable_only):
    """The Done-when of discovery: months after the season every run of the newest Golden
    JSON that OMS wants is due, however long ago it ended."""
    truth = later.truth()
    plan = plan_for(later, stable_only)
    golden = {int(r) for r in truth["certification"]["golden_runs"]}
    assert statuses(plan) == statuses_from_truth(truth)
    late = set(truth["planted"]["late_certified_runs"])
    assert late and {statuses(plan)[r] for r in late} == {"due"}
    assert {statuses(plan)[r] for r in golden} == {"due"}


def test_a_stuck_file_is_waited_for_then_ingested_with_the_gap(later, stable_only, tmp_path):
    stuck = later.truth()["planted"]["stuck_files"][0]
    run = stuck["run"]
    registered = utc(next(d for d in later.truth()["datasets"] if d["dataset"] == ZB)
                     ["runs"][str(run)]["dbs_registered_at"])
    early = plan_for(later, replace(stable_only, stuck_after_hours=1e6))
    assert statuses(early)[run] == "waiting"
    assert reasons(early)[run] == "DIALS not finished: 1 file(s) STARTED"
    plan = plan_for(later, stable_only)
    assert statuses(plan)[run] == "due"
    assert reasons(plan)[run].startswith(f"stuck upstream since {iso(registered)}: ingested "
                                         "with the gap (1 file(s) STARTED)")
    assert plan.stuck == [{"dataset": ZB, "run": run, "files": 1, "since": iso(registered),
                           "states": {"STARTED": 1}}]
    assert all(u["stuck"] == [run] for u in plan.units)
    manifest = Manifest(tmp_path)
    for unit in plan.units:
        record(manifest, unit, run)
    after = plan_for(later, stable_only, manifest=manifest)
    assert statuses(after)[run] == "complete" and after.stuck == []
    assert reasons(after)[run] == (f"ingested with a gap: 1 DIALS file(s) still not settled "
                                   f"since {iso(registered)} (force it again once they are)")


def test_the_plan_cli_months_later(later, tmp_path):
    """`dialsflow plan --json` with the real demo jobs: every run of the newest Golden JSON
    is complete, due or excluded by an OMS criterion; none waits for certification."""
    env = {**connection_env(later.host, later.port), "PATH": "/usr/bin:/bin",
           "DIALSFLOW_JOBS_FILE": str(ROOT / "include" / "jsons" / "jobs.json"),
           "DIALSFLOW_OUTPUT_ROOT": str(tmp_path)}
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "dialsflow"), "plan", "--json", "--at",
                        MONTHS_LATER], env=env, capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr
    doc = orjson.loads(r.stdout)
    truth = later.truth()
    golden = {int(x) for x in truth["certification"]["golden_runs"]}
    assert [j["job"] for j in doc["jobs"]] == ["demo_tracker", "demo_ecal"]
    for job in doc["jobs"]:
        assert set(job) == {"job", "certification", "runs"}
        assert job["certification"] == {"files": [
            truth["certification"]["latest"]["golden"].rsplit("/", 1)[1]]}
        rows = {row["run"]: row for row in job["runs"] if row["dataset"] == ZB}
        assert all(set(row) == {"run", "dataset", "status", "reason"} for row in job["runs"])
        assert golden <= set(rows)
        for run in golden:
            row = rows[run]
            assert row["status"] in ("complete", "due", "excluded"), row
            if row["status"] == "excluded":
                assert row["reason"].startswith(OMS_REASONS), row
        assert {r["run_number"] for r in truth["runs"]} <= set(rows)


# --------------------------------------------------------------------------- other jobs


def test_dcs_job_follows_its_energy(later, stable_only):
    """Express with the daily DCS-only JSON of 13.6 TeV: the 5.36 TeV file is the newest in
    the folder, yet the 13.6 TeV runs stay certified; the special runs are not."""
    truth = later.truth()
    job = replace(stable_only, dataset_patterns=(EXPRESS,), me_type="h1d",
                  me_patterns=("PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1$",),
                  certification=CertificationChoice("Collisions24", "dcs", "13p6TeV"))
    plan = plan_for(later, job)
    assert len(plan.certification["files"]) == 1
    assert "_13p6TeV_" in plan.certification["files"][0]
    got = statuses(plan, EXPRESS)
    special = set(truth["planted"]["special_energy_runs"])
    assert special and all(got[r] != "due" for r in special)
    bad = {r["run_number"] for r in truth["runs"] if r["bad"]}
    assert bad and {got[r] for r in bad} == {"due"}  # DCS-only certifies what Golden drops


def test_ecal_job_mixes_1d_and_2d_and_checks_its_workspace(emulator, jobs):
    job = jobs["demo_ecal"]
    plan = plan_for(emulator, job)
    assert sorted((u["workspace"], u["dim"]) for u in plan.units) == [("ecal", 1), ("ecal", 2)]
    with pytest.raises(InputError, match="is for workspace 'ecal' but the DIALS client talks "
                                         "to 'tracker'"):
        with caf_client(emulator) as caf, dbs_client(emulator) as dbs:
            plan_job(job, at=utc(emulator.truth()["now"]), dials=dials_client(emulator),
                     oms=oms(emulator, "direct"), caf=caf, dbs=dbs,
                     manifest=Manifest(Path("/nonexistent")))


# --------------------------------------------------------------------------- manifest, budget


def record(manifest: Manifest, unit: dict, run: int, *, complete: bool = True,
           size: int = 10, written: int = 10) -> None:
    key = UnitKey(unit["workspace"], unit["dataset"], unit["me"])
    path = run_file(manifest.outdir, key, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * written)
    manifest.record(RunEntry(unit["workspace"], unit["dataset"], unit["dataset_id"], unit["me"],
                             unit["me_id"], unit["dim"], run, 5, [[1, 5]], size, "0" * 64,
                             "2024-04-24T00:00:00Z", complete))


def test_complete_runs_are_no_longer_due_unless_forced(later, stable_only, tmp_path):
    first = plan_for(later, stable_only)
    l1, l2 = first.units
    runs = l1["runs"]
    manifest = Manifest(tmp_path)
    for run in runs[:3]:
        record(manifest, l1, run)
    record(manifest, l1, runs[3], complete=False)  # --test output: not complete
    record(manifest, l1, runs[4], written=7)  # file does not have the recorded size
    record(manifest, l2, runs[0])
    plan = plan_for(later, stable_only, manifest=manifest)
    assert {u["me"]: u["runs"] for u in plan.units} == {l1["me"]: runs[3:], l2["me"]: runs[1:]}
    assert statuses(plan)[runs[0]] == "complete"  # both MEs have it
    assert {statuses(plan)[r] for r in runs[1:]} == {"due"}
    forced = plan_for(later, stable_only, manifest=manifest, force=True)
    assert [u["runs"] for u in forced.units] == [runs, runs] and forced.force
    for run in runs:
        record(manifest, l1, run)
        record(manifest, l2, run)
    done = plan_for(later, stable_only, manifest=manifest)
    assert done.units == [] and {statuses(done)[r] for r in runs} == {"complete"}


def test_a_decertified_run_stays_on_disk_and_is_reported(later, stable_only, tmp_path):
    dropped = later.truth()["planted"]["decertified_runs"][0]
    unit = plan_for(later, stable_only).units[0]
    manifest = Manifest(tmp_path)
    for u in plan_for(later, stable_only).units:
        record(manifest, u, dropped)
    plan = plan_for(later, stable_only, manifest=manifest)
    assert statuses(plan)[dropped] == "complete"
    assert reasons(plan)[dropped].startswith("ingested earlier; now excluded: not in the "
                                             "certification in force")
    assert run_file(tmp_path, UnitKey("tracker", ZB, unit["me"]), dropped).exists()


def test_the_budget_takes_the_oldest_runs_first(later, stable_only):
    plan = plan_for(later, replace(stable_only, max_runs_per_night=3))
    due = sorted(r for r, s in statuses(plan).items() if s == "due")
    assert len(due) > 3
    assert [u["runs"] for u in plan.units] == [due[:3], due[:3]]
    assert plan.deferred == 2 * (len(due) - 3)
    deferred = {r: why for r, why in reasons(plan).items() if r in due[3:]}
    assert all(why.startswith("deferred to a later night: over the job's budget of 3 runs")
               for why in deferred.values())


# --------------------------------------------------------------------------- explicit runs


def test_explicit_runs_restrict_the_plan(later, stable_only):
    truth = later.truth()
    golden = sorted(int(r) for r in truth["certification"]["golden_runs"])
    bad = next(r["run_number"] for r in truth["runs"] if r["bad"])
    unstable = next(r["run_number"] for r in truth["runs"] if not r["stable_beam"])
    chosen = {golden[0], golden[-1], bad, unstable, 400000}
    plan = plan_for(later, stable_only, runs=RunSelection.of(chosen))
    assert set(statuses(plan)) == chosen
    assert statuses(plan) == {golden[0]: "due", golden[-1]: "due", bad: "excluded",
                              unstable: "excluded", 400000: "waiting"}
    assert reasons(plan)[bad].startswith("not in the certification in force (Cert_")
    assert reasons(plan)[unstable] == "no stable beams (OMS stable_beam false)"
    assert reasons(plan)[400000] == "unknown to OMS"
    ranged = plan_for(later, stable_only, runs=RunSelection(golden[0], golden[4]))
    assert set(statuses(ranged)) <= set(range(golden[0], golden[4] + 1))
    assert ranged.selection == f"{golden[0]}-{golden[4]}"


# --------------------------------------------------------------------------- the plan as data


def test_plan_is_json_and_renders_one_line_per_run(emulator, stable_only):
    plan = plan_for(emulator, stable_only)
    data = orjson.loads(orjson.dumps(plan.to_dict()))
    assert JobPlan.from_dict(data) == plan
    for unit in data["units"]:
        assert set(unit) == {"workspace", "dataset", "dataset_id", "me", "me_id", "dim", "runs",
                             "certified_by", "stuck"}
        assert sorted(r for runs in unit["certified_by"].values() for r in runs) == unit["runs"]
        converted = Unit.from_json(unit)
        assert converted.endpoint == "th2/" and converted.key.dataset == ZB
    text = plan.render().splitlines()
    assert text[0].startswith("job demo_tracker (tracker) at ")
    assert text[1] == f"  certification: {plan.certification['files'][0]}"
    rows = [line for line in text if re.match(r"  \d{6}  ", line)]
    assert len(rows) == len(plan.runs)
    public = plan.public()
    assert set(public) == {"job", "certification", "runs"} and public["runs"][0]["dataset"]


def test_caf_client_of_a_job(later, stable_only):
    """The job's energy reaches the CAF client the way the DAG builds it."""
    from dialsflow.config.connections import CafSettings

    base = CafSettings.from_connection(connection(later, "caf_default"))
    job = replace(stable_only, certification=CertificationChoice("Collisions24", "dcs"))
    with CafClient(job.caf_settings(base), energy=job.certification.energy) as caf:
        assert all("_13p6TeV_" in n for n in caf.current().names)
