"""Reliability suite of the nightly DAG `dials_ingest`: faults and short tokens, a worker
killed mid-ingest, PostgreSQL restarted mid-run, an output root that is full or read-only,
and no secret in task logs, XComs or rendered templates.

(a) runs under `airflow dags test` (SQLite, tasks in one process: two nights in ~1 min);
everything else shares ONE native production topology (deploy/native: PostgreSQL,
Redis, Celery worker, api-server, scheduler, dag-processor, triggerer) started once for the
module, on a PostgreSQL cluster of its own (tests/deploy/conftest.py PrivatePostgres) so
restarting it disturbs nobody else. Each night is small: ZeroBias × {pixel charge (1D),
BPix L1 72×26} the morning after the demo world's third Golden release → 14 due runs.
Tests of the topology run in file order; (f) scans what the nights before it left. Alone:
`.venv/bin/python -m pytest -q -s tests/deploy/test_reliability.py`.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import orjson
import pyarrow.parquet as pq
import pytest
import requests

from deploy.native.deployment import ENV_FILE, Deployment
from deploy.native.processes import kill_tree
from deploy.rest import AirflowClient
from dialsflow.config.jobs import Job, load_jobs
from dialsflow.store.layout import UnitKey, run_file
from dialsflow.store.manifest import Manifest, RunEntry, file_sha256
from dialsflow_emulator.process import EmulatorProcess
from localdev.airflow_home import LocalAirflow

from ..expected import ZB, due_runs, morning_after_release
from ..fs import mount_tmpfs, umount
from .conftest import (
    PrivatePostgres,
    Started,
    no_scheduled_runs,
    run_local,
    start_local,
    stop_local,
)

pytestmark = [pytest.mark.deploy, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DAG = "dials_ingest"
CHARGE = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"
BPIX = ("PixelPhase1/Phase1_MechanicalView/PXBarrel/digi_occupancy_per_SignedModuleCoord_per_"
        "SignedLadderCoord_PXLayer_1")
MES = (CHARGE, BPIX)
NOW = morning_after_release(2)  # emulator clock: the third Golden release, 14 runs
DAY = NOW[:10]
SMALL_FS = "640k"  # tmpfs of the "full" output root: a few runs fit, the night does not


def write_jobs(base: Path, outputs: dict[str, str]) -> Path:
    """A jobs file with one job per name, all the same small night, output as given."""
    (base / "mes.json").write_bytes(orjson.dumps([m + "$" for m in MES]))
    jobs = [{"name": name, "workspace": "tracker",
             "datasets_file": str(ROOT / "include/jsons/datasets_zerobias_2024c.json"),
             "mes_file": "mes.json", "output": output,
             "certification": {"class": "Collisions24", "kind": "golden"},
             "oms": {"stable_beam": True},
             "completeness_tolerance": 0.3}
            for name, output in outputs.items()]
    (base / "jobs.json").write_bytes(orjson.dumps({"jobs": jobs}))
    return base / "jobs.json"


def entries(job: Job) -> dict[tuple[str, int], RunEntry]:
    manifest = Manifest(job.output)
    return {(me, e.run): e for me in MES for e in manifest.entries(UnitKey("tracker", ZB, me))}


def temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*") if p.name.endswith(".tmp"))


def assert_consistent(job: Job) -> dict[tuple[str, int], RunEntry]:
    """Nothing under the job's output looks complete unless it is: every manifest entry
    has its parquet file with the recorded size, sha256 and rows; every parquet file reads
    back; no temporary file is left. Returns the entries."""
    got = entries(job)
    for (_, run), e in got.items():
        path = run_file(job.output, e.key, run)
        assert path.stat().st_size == e.bytes and file_sha256(path) == e.sha256, path
        table = pq.read_table(path)
        assert table.num_rows == e.rows and set(table.column("run_number").to_pylist()) <= {run}
    for path in job.output.rglob("run_*.parquet"):
        pq.read_metadata(path)  # a complete parquet file, entry or not
    assert temporaries(job.output) == []
    return got


def assert_night_complete(job: Job, truth: dict) -> None:
    """Exactly the due runs of both MEs, complete and consistent."""
    due = due_runs(truth)
    got = assert_consistent(job)
    assert sorted(got) == sorted((me, run) for me in MES for run in due)
    assert all(e.complete for e in got.values())


# ---- (a) faults and short tokens: the same output as a clean night -------------------------


def _table(job: Job, me: str, run: int):
    t = pq.read_table(run_file(job.output, UnitKey("tracker", ZB, me), run))
    return t.sort_by([("run_number", "ascending"), ("ls_number", "ascending")])


def _comparable(e: RunEntry, emulator_url: str) -> dict:
    """A manifest entry without what legitimately differs between two nights: the ingest
    time and the emulator's address in the source URL. The file's checksum and size differ
    too, as its footer names the source URL; the tables themselves are compared row by row."""
    d = {k: v for k, v in e.__dict__.items() if k not in ("ingested_at", "sha256", "bytes")}
    d["source"] = {**e.source, "url": e.source["url"].replace(emulator_url, "EMULATOR")}
    return d


def errors_first(out: subprocess.CompletedProcess) -> str:
    """What a failed `airflow dags test` printed: its error lines (every task's, the first
    cause included), then the end of the output."""
    text = out.stdout + out.stderr
    errors = [line for line in text.splitlines() if "[error" in line or "Error:" in line]
    return "\n".join(errors[:40]) + "\n...\n" + text[-2000:]


def test_faults_and_short_tokens_give_the_clean_output(tmp_path_factory) -> None:
    """(a) Under `airflow dags test` (SQLite; the same task code as on Celery, cheaper to
    run twice): the same night once against a clean emulator and once against one failing
    30 % of data requests (every fault kind: 502/503/504, 429, resets, cut bodies) with
    5-second tokens. The second night's parquet equals the first row for row and its
    manifest entries equal the first's (ingest time and emulator address aside)."""
    t0 = time.monotonic()
    base = tmp_path_factory.mktemp("chaos")
    jobs = load_jobs(write_jobs(base, {"clean": str(base / "out" / "clean"),
                                       "chaos": str(base / "out" / "chaos")}))
    env = {"DIALSFLOW_RETRY_DELAY_S": "1"}
    with contextlib.ExitStack() as stack:
        clean = stack.enter_context(EmulatorProcess("--now", NOW))
        chaos = stack.enter_context(EmulatorProcess(
            "--now", NOW, "--fault-rate", "0.3", "--fault-kinds", "502,503,504,429,reset,truncate",
            "--token-ttl", "5"))
        home = base / "home"
        ref = LocalAirflow(home, clean, base / "out", jobs_file=base / "jobs.json",
                           extra_env=env).setup()
        out = ref.dags_test(NOW, {"jobs": ["clean"]})
        assert out.returncode == 0, errors_first(out)
        hostile = LocalAirflow(home, chaos, base / "out", jobs_file=base / "jobs.json",
                               extra_env=env)
        out = hostile.dags_test(NOW.replace("12:00:00", "12:01:00"), {"jobs": ["chaos"]})
        assert out.returncode == 0, errors_first(out)
        faults = chaos.stats()["faults"]
        truth = clean.truth()
        clean_url, chaos_url = clean.url, chaos.url
    assert sum(faults.values()) > 0 and len([k for k, n in faults.items() if n]) >= 3, faults
    assert_night_complete(jobs["clean"], truth)
    assert_night_complete(jobs["chaos"], truth)
    want, got = entries(jobs["clean"]), entries(jobs["chaos"])
    assert sorted(want) == sorted(got)
    for me, run in sorted(want):
        assert _table(jobs["chaos"], me, run).equals(_table(jobs["clean"], me, run)), (me, run)
        assert _comparable(got[(me, run)], chaos_url) == _comparable(want[(me, run)], clean_url)
    print(f"\n(a) faults injected {faults}; wall {time.monotonic() - t0:.0f} s")


# ---- the native topology shared by (b)–(f) --------------------------------------------------


@dataclass
class Topology:
    started: Started
    api: AirflowClient
    pg: PrivatePostgres
    jobs: dict[str, Job]
    small_fs: Path
    nights: list[str]

    @property
    def dep(self) -> Deployment:
        return self.started.dep

    def emulator(self, method: str, name: str, body: dict | None = None) -> dict:
        r = requests.request(method, f"{self.dep.emulator_url}/_emulator/{name}", json=body,
                             timeout=30)
        r.raise_for_status()
        return r.json()

    def trigger(self, job: str, **conf: object) -> str:
        """A manual run of the night before DAY 03:00 for one job; each run gets its own
        logical date within that night."""
        logical = f"{DAY}T12:{len(self.nights):02d}:00Z"
        run = self.api.trigger(DAG, logical_date=logical, conf={"jobs": [job], **conf})
        self.nights.append(run["dag_run_id"])
        return run["dag_run_id"]

    def ingest_tis(self, run_id: str) -> list[dict]:
        return [t for t in self.api.task_instances(DAG, run_id) if t["task_id"] == "ingest"]

    def wait_for(self, what: str, check, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}\n{self.started.logs()}")


@pytest.fixture(scope="module")
def topo(tmp_path_factory) -> Iterator[Topology]:
    t0 = time.monotonic()
    base = tmp_path_factory.mktemp("reliability")
    with contextlib.ExitStack() as stack:
        pg = PrivatePostgres().start()
        stack.callback(pg.stop)
        small = mount_tmpfs(SMALL_FS)
        stack.callback(umount, small)
        jobs_file = write_jobs(base, {"killed": "killed", "pgrestart": "pgrestart",
                                      "full": str(small / "full")})
        home = base / "home"
        stack.callback(stop_local, home)
        started = start_local(
            home, "--emulator", "--emulator-arg=--now", f"--emulator-arg={NOW}",
            "--pg-port", str(pg.port), "--jobs-file", str(jobs_file), *no_scheduled_runs(NOW),
            "--env", "DIALSFLOW_RETRIES=1", "--env", "DIALSFLOW_RETRY_DELAY_S=1",
            # a killed worker's tasks are found by their missing heartbeat: soon, not in 5 min
            "--env", "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=20",
            "--env", "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL=2",
            # a task message the worker took but never started while the database was down
            # (Celery's result backend is in it) is requeued by the scheduler: soon, not in 10 min
            "--env", "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT=30",
            "--env", "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL=5")
        dep = started.dep
        api = AirflowClient(dep.url, "admin", dep.admin_password)
        with_env = {"DIALSFLOW_OUTPUT_ROOT": str(Path(dep.home) / "output")}
        with _environ(with_env):
            jobs = load_jobs(jobs_file)
        api.wait_dag(DAG, timeout=90)
        api.unpause(DAG)
        print(f"\ntopology up in {time.monotonic() - t0:.0f} s")
        yield Topology(started, api, pg, jobs, small, [])


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    import os

    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker(topo: Topology):
    return next(p for p in Deployment.load(topo.dep.home).procs if p.name == "celery-worker")


# ---- (b) the Celery worker killed mid-ingest ------------------------------------------------


def test_worker_killed_mid_ingest_retries_to_a_complete_night(topo: Topology) -> None:
    """(b) SIGKILL of the Celery worker and every task process below it while both mapped
    ingest tasks write (a run's parquet published, others in flight; the emulator answers
    slowly to widen the window). The worker comes back (`deploy.native restart`, what
    compose's restart policy does); the scheduler finds the killed tries by their missing
    heartbeat and Airflow retries them; the run succeeds with exactly the due runs, every
    manifest entry matching its file's sha256 and no temporary file left."""
    t0 = time.monotonic()
    job = topo.jobs["killed"]
    run_id = topo.trigger("killed")
    topo.wait_for("mapped ingest tasks", lambda: len(topo.ingest_tis(run_id)) == 2)
    topo.emulator("PUT", "faults", {"latency_ms": 700})
    try:
        topo.wait_for("a published run and ingest tasks running", lambda: any(
            job.output.rglob("run_*.parquet")) and all(
            t["state"] == "running" for t in topo.ingest_tis(run_id)))
        in_flight = temporaries(job.output)
        kill_tree(_worker(topo))
    finally:
        topo.emulator("PUT", "faults", {"latency_ms": 0})
    killed_at = {t["map_index"]: t["try_number"] for t in topo.ingest_tis(run_id)}
    out = run_local("restart", "--home", str(topo.dep.home), "celery-worker")
    assert out.returncode == 0, out.stdout + out.stderr
    done = topo.api.wait_run(DAG, run_id, timeout=300)
    tis = topo.ingest_tis(run_id)
    assert done["state"] == "success", [(t["map_index"], t["state"]) for t in tis]
    assert all(t["try_number"] > killed_at[t["map_index"]] for t in tis), (killed_at, tis)
    assert_night_complete(job, topo.emulator("GET", "truth"))
    print(f"\n(b) killed with {len(in_flight)} temporary file(s) in flight; "
          f"wall {time.monotonic() - t0:.0f} s")


# ---- (c) PostgreSQL restarted mid-run -------------------------------------------------------


def _restarted_by_policy(topo: Topology) -> list[str]:
    from deploy.native.supervise import RESTART_MARK

    return sorted(p.name for p in Deployment.load(topo.dep.home).procs
                  if RESTART_MARK in Path(p.log).read_text(errors="replace"))


def test_postgres_restart_mid_run_recovers(topo: Topology) -> None:
    """(c) PostgreSQL restarted (fast shutdown: every session cut; down 5 s) while both
    mapped ingest tasks run. What happens (Airflow 3.3.2, psycopg2, pool_pre_ping on):
    the scheduler ("Exited execute loop"), the dag-processor and the triggerer EXIT on the
    refused reconnect; the api-server stays up and answers 500 meanwhile (pre-ping gives it
    fresh connections afterwards); the Celery worker stays up and its running tasks go on
    (their calls to the execution API are retried until the api-server can reach the
    database again) and succeed. Without a restart policy the DAG run then stays `running`
    for good: nothing schedules `completeness`. deploy/native therefore runs every
    component under compose's `restart: always` (`supervise.py`): the three are started
    again, the new scheduler adopts the run, and it succeeds with the complete night. A task
    queued to Celery just before the outage was once taken by the worker and never started
    (when `conditions` ran beside the ingest tasks; docs/deployment.md); the queued timeout
    below makes the scheduler requeue such a task soon."""
    t0 = time.monotonic()
    job = topo.jobs["pgrestart"]
    run_id = topo.trigger("pgrestart")
    topo.wait_for("mapped ingest tasks", lambda: len(topo.ingest_tis(run_id)) == 2)
    topo.emulator("PUT", "faults", {"latency_ms": 500})
    try:
        topo.wait_for("ingest tasks running", lambda: all(
            t["state"] == "running" for t in topo.ingest_tis(run_id)))
        topo.pg.restart(downtime=5)
    finally:
        topo.emulator("PUT", "faults", {"latency_ms": 0})
    try:
        done = topo.api.wait_run(DAG, run_id, timeout=240)
    except BaseException:
        print(topo.started.logs())
        raise
    tis = topo.api.task_instances(DAG, run_id)
    assert done["state"] == "success", [(t["task_id"], t["map_index"], t["state"]) for t in tis]
    assert_night_complete(job, topo.emulator("GET", "truth"))
    print(f"\n(c) restarted by the restart policy: {_restarted_by_policy(topo)}; tries "
          f"{[(t['task_id'], t['map_index'], t['try_number']) for t in tis]}; "
          f"wall {time.monotonic() - t0:.0f} s")


# ---- (d) output root full, then read-only ---------------------------------------------------


def _failed_ingest_lines(topo: Topology, run_id: str, needle: str) -> list[str]:
    """Per failed ingest task, the log lines of its last try that name `needle`."""
    failed = [t for t in topo.ingest_tis(run_id) if t["state"] == "failed"]
    assert failed, [(t["map_index"], t["state"]) for t in topo.ingest_tis(run_id)]
    found = []
    for t in failed:
        text = topo.api.log_text(topo.api.task_log(DAG, run_id, "ingest", t["try_number"],
                                                   t["map_index"]))
        lines = [line for line in text.splitlines() if needle in line]
        assert lines, f"map index {t['map_index']}: no line with {needle!r}:\n{text[-3000:]}"
        found.extend(lines)
    return found


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_sha256(p) for p in folder.rglob("*") if p.is_file()}


def test_output_root_full_fails_clearly_and_leaves_nothing_corrupt(topo: Topology) -> None:
    """(d) The job's output root is a tmpfs of 640 KiB: a few runs fit, the night does
    not. The ingest tasks fail (after their retry) naming the file and "No space left on
    device"; the DAG run fails; what is on disk is consistent (each manifest entry has its
    file with the recorded sha256, every parquet file reads back, no temporary file)."""
    t0 = time.monotonic()
    job = topo.jobs["full"]
    run_id = topo.trigger("full")
    done = topo.api.wait_run(DAG, run_id, timeout=300)
    assert done["state"] == "failed"
    lines = _failed_ingest_lines(topo, run_id, "No space left on device")
    assert any(str(job.output) in line for line in lines), lines
    got = assert_consistent(job)
    assert temporaries(topo.small_fs) == []
    print(f"\n(d) full: {len(got)} runs complete before the disk filled; e.g. "
          f"{lines[0][:300]}; wall {time.monotonic() - t0:.0f} s")


def test_output_root_read_only_fails_clearly_and_changes_nothing(topo: Topology) -> None:
    """(d) The same output root remounted read-only, and a forced re-ingestion of the
    night: the ingest tasks fail before any request naming the folder and "Read-only file
    system"; not one byte under the root changes."""
    t0 = time.monotonic()
    job = topo.jobs["full"]
    due = due_runs(topo.emulator("GET", "truth"))
    before = _snapshot(topo.small_fs)
    subprocess.run(["mount", "-o", "remount,ro", str(topo.small_fs)], check=True)
    try:
        run_id = topo.trigger("full", force=True, runs=",".join(map(str, due)))
        done = topo.api.wait_run(DAG, run_id, timeout=300)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(topo.small_fs)], check=True)
    assert done["state"] == "failed"
    lines = _failed_ingest_lines(topo, run_id, "Read-only file system")
    assert any(f"output directory {job.output} is not writable" in line for line in lines)
    assert _snapshot(topo.small_fs) == before
    print(f"\n(d) read-only: {lines[0][:300]}; wall {time.monotonic() - t0:.0f} s")


# ---- (f) no secret in task logs, XComs or rendered templates -------------------------------

TOKEN = re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]{8,}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


def _client_secrets(topo: Topology) -> set[str]:
    """The `password` of every connection the components got (the emulator's secrets)."""
    env = json.loads((Path(topo.dep.home) / ENV_FILE).read_text())
    found = {json.loads(v).get("password") for k, v in env.items()
             if k.startswith("AIRFLOW_CONN_")}
    return {s for s in found if s}


def _leaks(text: str, secrets: set[str]) -> list[str]:
    return [f"client secret {s[:3]}…" for s in secrets if s in text] + \
        [m.group(0)[:20] + "…" for m in TOKEN.finditer(text)]


def test_no_secret_in_task_logs_xcoms_or_rendered_templates(topo: Topology) -> None:
    """(f) After the nights above (faults, kills, restarts and failures included): no
    connection secret and no bearer token or JWT in any task log file, any XCom value
    (mapped ones included) or any rendered template field."""
    t0 = time.monotonic()
    secrets = _client_secrets(topo)
    assert secrets, "the deployment's connections carry no password: nothing to look for"
    assert len(topo.nights) >= 4, "run the module's earlier tests first (file order)"
    logs = sorted((Path(topo.dep.home) / "logs" / f"dag_id={DAG}").rglob("*.log"))
    ingest_logs = [p for p in logs if "task_id=ingest" in str(p)]
    assert len(ingest_logs) >= 2 * len(topo.nights), logs  # every try of every mapped task
    leaks = {str(p): found for p in logs
             if (found := _leaks(p.read_text(errors="replace"), secrets))}
    xcoms = rendered = 0
    for run_id in topo.nights:
        quoted = quote(run_id, safe="")
        listed = topo.api.get(f"dags/{DAG}/dagRuns/{quoted}/taskInstances/~/xcomEntries",
                              params={"limit": 1000})["xcom_entries"]
        for x in listed:
            value = topo.api.get(
                f"dags/{DAG}/dagRuns/{quoted}/taskInstances/{x['task_id']}/xcomEntries/"
                f"{quote(x['key'], safe='')}", params={"map_index": x["map_index"]})
            xcoms += 1
            if found := _leaks(json.dumps(value), secrets):
                leaks[f"xcom {run_id} {x['task_id']}[{x['map_index']}] {x['key']}"] = found
        for ti in topo.api.task_instances(DAG, run_id):
            assert "rendered_fields" in ti
            rendered += 1
            if found := _leaks(json.dumps(ti["rendered_fields"]), secrets):
                leaks[f"rendered {run_id} {ti['task_id']}[{ti['map_index']}]"] = found
    assert xcoms >= 3 * len(topo.nights) and rendered >= 5 * len(topo.nights)
    assert leaks == {}
    print(f"\n(f) scanned {len(logs)} task logs, {xcoms} XComs, {rendered} rendered "
          f"task instances; wall {time.monotonic() - t0:.0f} s")
