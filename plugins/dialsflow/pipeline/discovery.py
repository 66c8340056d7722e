"""What is due for a job: every run its certification holds, whenever it ended.

There is no time window. Certification comes weeks to months after a run (Golden JSONs are
released a few times a year, docs/reference/dbs_caf.md B2), so "newly certified" is "in the
certification in force and not complete in the manifest yet". Every run that the
certification, OMS or DIALS knows for the job gets one status per concrete dataset:

- `excluded`: OMS says the job does not want it (no stable beams, a component out, too little
  luminosity), the certification in force leaves it out, or the dataset has no file of it;
- `waiting`: not certified yet, still ongoing, no file in DBS yet, or DIALS has not indexed
  or finished every DBS file of the run (docs/reference/dials.md §2.2);
- `due`: certified, wanted, and DIALS is done with it (or a file of it has been PENDING or
  STARTED for longer than the job's `stuck_after_hours`: then it is *stuck upstream*, ingested
  with the gap and reported), and some ME of the job lacks it; runs beyond the job's
  `max_runs_per_night` wait for the next night (oldest runs first), still `due`;
- `complete`: every ME of the job has it in the manifest (a run the certification later
  dropped stays on disk and is reported, never deleted).

DIALS readiness compares DBS with DIALS file by file: every valid DBS file of the run must be
in DIALS' file index and settled (FINISHED, or failed for good: COPY_ERROR, PARSING_ERROR,
...; their holes are upstream gaps for the completeness check). The plan is plain JSON; its
units are the kwargs of the mapped Airflow tasks (`Unit.to_json` plus the certification file
of each run).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dialsflow.config.connections import DEFAULT_WORKSPACE
from dialsflow.config.jobs import Job
from dialsflow.config.runs import RunSelection
from dialsflow.errors import InputError
from dialsflow.lfns import run_of
from dialsflow.pipeline.run_filters import rejection
from dialsflow.pipeline.units import Unit, dials_runs, expand_datasets, expand_mes
from dialsflow.services.caf import CafClient, Certification
from dialsflow.services.dbs import DbsClient, DbsFile
from dialsflow.services.dials import DialsClient
from dialsflow.services.oms import OmsRun, OmsRuns
from dialsflow.store.layout import UnitKey
from dialsflow.store.manifest import Manifest
from dialsflow.times import iso, utc

STATUSES = ("complete", "due", "waiting", "excluded")
#: DIALS file-index statuses of files still moving (docs/reference/dials.md §2.2).
IN_FLIGHT = ("PENDING", "STARTED")
#: PromptReco files reach DBS ~48 h after a run; until a week has passed, a run without a file
#: in the dataset is waited for, then it is taken as not in the dataset.
RECO_GRACE = timedelta(days=7)


@dataclass
class JobPlan:
    """The result of `plan_job`; `to_dict()` is JSON (XCom-safe)."""

    job: str
    workspace: str
    at: str  # ISO UTC: the clock statuses were judged at
    selection: str | None  # explicit runs, as text
    force: bool
    certification: dict[str, Any]  # {"files": [names], "folder": url}
    #: Unit.to_json() of every dataset × ME with runs due tonight, plus "certified_by"
    #: {file name: [runs]} and "stuck": [runs ingested with a stuck DIALS file]
    units: list[dict[str, Any]] = field(default_factory=list)
    #: one row per run and concrete dataset: {run, dataset, status, reason}
    runs: list[dict[str, Any]] = field(default_factory=list)
    stuck: list[dict[str, Any]] = field(default_factory=list)  # {dataset, run, files, since}
    #: due runs with files DIALS failed for good: {dataset, run, files: {status: count}}
    failed_upstream: list[dict[str, Any]] = field(default_factory=list)
    deferred: int = 0  # run × ME pairs due but over tonight's budget

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobPlan:
        return cls(**data)

    def counts(self) -> dict[str, int]:
        found = Counter(r["status"] for r in self.runs)
        return {s: found.get(s, 0) for s in STATUSES}

    def public(self) -> dict[str, Any]:
        """What `dialsflow plan --json` shows of a job."""
        return {"job": self.job, "certification": {"files": self.certification["files"]},
                "runs": [{k: r[k] for k in ("run", "dataset", "status", "reason")}
                         for r in self.runs]}

    def render(self) -> str:
        """The plan as `dialsflow plan` prints it and the discover task logs it: the
        certification, counts, runs stuck upstream, then one line per run and dataset."""
        files = ", ".join(self.certification["files"]) or "none in force"
        c = self.counts()
        pairs = sum(len(u["runs"]) for u in self.units)
        lines = [f"job {self.job} ({self.workspace}) at {self.at}"
                 f"{f', runs {self.selection}' if self.selection else ''}"
                 f"{', force' if self.force else ''}",
                 f"  certification: {files}",
                 f"  runs × datasets: {c['complete']} complete, {c['due']} due, "
                 f"{c['waiting']} waiting, {c['excluded']} excluded; tonight {pairs} run × ME "
                 f"in {len(self.units)} unit(s), {self.deferred} run × ME deferred by the budget"]
        for s in self.stuck:
            lines.append(f"  STUCK UPSTREAM: {s['dataset']} run {s['run']}: {s['files']} "
                         f"file(s) not settled in DIALS since {s['since']}")
        for f in self.failed_upstream:
            files = ", ".join(f"{n} {status}" for status, n in f["files"].items())
            lines.append(f"  FAILED UPSTREAM: {f['dataset']} run {f['run']}: DIALS gave up on "
                         f"{files} file(s): ingested with the gap")
        width = max((len(r["dataset"]) for r in self.runs), default=0)
        for r in self.runs:
            lines.append(f"  {r['run']}  {r['dataset']:<{width}}  {r['status']:<8}  "
                         f"{r['reason'] or ''}".rstrip())
        return "\n".join(lines)


# ---- planning --------------------------------------------------------------------------


def plan_job(job: Job, *, at: datetime, dials: DialsClient, oms: OmsRuns,
             caf: CafClient | Certification, dbs: DbsClient, manifest: Manifest,
             runs: RunSelection | None = None, force: bool = False) -> JobPlan:
    """Every run of the job with its status at `at`, and tonight's units.

    `dials` must talk to the job's workspace; `caf` is a client for the job's class, kind and
    energy (or the Certification it gave); `runs` restricts the plan to those runs; `force`
    makes complete runs due again. Nothing is logged here: callers log `render()`.
    """
    workspace = dials.settings.workspace or DEFAULT_WORKSPACE
    if workspace != job.workspace:
        raise InputError(f"job {job.name!r} is for workspace {job.workspace!r} but the DIALS "
                         f"client talks to {workspace!r}")
    at = utc(at)
    cert = caf if isinstance(caf, Certification) else caf.current()
    plan = JobPlan(job.name, job.workspace, iso(at), runs.text if runs else None, force,
                   {"files": cert.names, "folder": cert.folder_url})
    datasets = expand_datasets(dials, list(job.dataset_patterns))
    mes = expand_mes(dials, list(job.me_patterns), job.me_type)
    in_dials = {ds: set(dials_runs(dials, ds_id, ds, None)) for ds, ds_id in datasets.items()}

    # Every run someone knows: the certification, DIALS (for these datasets), and OMS since
    # the datasets exist (the era began), or within an explicit selection.
    known = set(cert.runs).union(*in_dials.values())
    records: dict[int, OmsRun] = {}
    if runs is None:
        created = [c for ds in datasets if (c := dbs.dataset_created(ds)) is not None]
        if created:
            since = datetime.fromtimestamp(min(created), at.tzinfo)
            records = {r.run_number: r for r in oms.runs_started_since(since)}
    else:
        known = {r for r in known if r in runs} | set(runs.listed or ())
        if known:
            records = {r.run_number: r for r in oms.runs_numbered(*runs.bounds)
                       if r.run_number in runs}
    if missing := sorted(known - records.keys()):
        records |= {r.run_number: r for r in oms.runs_numbered(missing[0], missing[-1])}
    known |= {r for r in records if runs is None or r in runs}
    if not known:
        return plan
    # What OMS and the certification say does not depend on the dataset.
    judged = {run: _run_status(run, records.get(run), cert, job) for run in known}

    for dataset, dataset_id in datasets.items():
        keys = {me: UnitKey(job.workspace, dataset, me) for me in mes}
        on_disk = {me: manifest.complete_runs(key) for me, key in keys.items()}
        dbs_files = dbs.files_by_run(dataset)
        dials_files = _dials_files(dials, dataset_id, dataset)
        due_by_me: dict[str, list[int]] = {me: [] for me in mes}
        stuck_runs: set[int] = set()
        for run in sorted(known):
            status, reason = judged[run]
            stuck, failed = None, {}
            if status is None:
                record = records[run]  # _run_status wants it: OMS knows it, ended
                files = dbs_files.get(run, [])
                status, reason, stuck = _readiness(files, dials_files,
                                                   run in in_dials[dataset],
                                                   record.end_time or at, at, job)
                failed = _failed(files, dials_files) if status == "due" else {}
            lacking = [me for me in mes if force or run not in on_disk[me]]
            if status == "due" and lacking:
                for me in lacking:
                    due_by_me[me].append(run)
                if stuck:
                    stuck_runs.add(run)
                    plan.stuck.append({"dataset": dataset, "run": run, **stuck})
                if failed:
                    plan.failed_upstream.append({"dataset": dataset, "run": run,
                                                 "files": failed})
            elif status == "due":
                status = "complete"
                reason = (f"ingested with a gap: {stuck['files']} DIALS file(s) still not "
                          f"settled since {stuck['since']} (force it again once they are)"
                          if stuck else None)
            elif not lacking and mes:
                # On disk, though the certification or OMS no longer wants it: kept, said.
                reason = f"ingested earlier; now {status}: {reason}"
                status = "complete"
            plan.runs.append({"run": run, "dataset": dataset, "status": status,
                              "reason": reason})
        _add_units(plan, job, dataset, dataset_id, mes, keys, due_by_me, cert, stuck_runs)
    return plan


def _add_units(plan: JobPlan, job: Job, dataset: str, dataset_id: int,
               mes: dict[str, tuple[int, int]], keys: dict[str, UnitKey],
               due_by_me: dict[str, list[int]], cert: Certification,
               stuck_runs: set[int]) -> None:
    """One unit per ME with runs due, oldest first, at most the job's nightly budget."""
    deferred_runs: set[int] = set()
    for me, (me_id, dim) in mes.items():
        due = sorted(due_by_me[me])
        tonight, later = due[:job.max_runs_per_night], due[job.max_runs_per_night:]
        plan.deferred += len(later)
        deferred_runs.update(later)
        if not tonight:
            continue
        certified_by: dict[str, list[int]] = {}
        for run in tonight:
            source = cert.source(run)
            if source is not None:
                certified_by.setdefault(source.name, []).append(run)
        plan.units.append({**Unit(keys[me], dataset_id, me_id, dim, tuple(tonight)).to_json(),
                           "certified_by": certified_by,
                           "stuck": sorted(stuck_runs.intersection(tonight))})
    for row in plan.runs:
        if row["dataset"] == dataset and row["status"] == "due" and row["run"] in deferred_runs:
            row["reason"] = (f"deferred to a later night: over the job's budget of "
                             f"{job.max_runs_per_night} runs per dataset × ME")


def _run_status(run: int, record: OmsRun | None, cert: Certification,
                job: Job) -> tuple[str | None, str | None]:
    """What OMS and the certification say of a run; (None, None) when both want it."""
    if record is None:
        return "waiting", "unknown to OMS"
    if not record.ended:
        return "waiting", "still ongoing (OMS end_time null)"
    reason = rejection(record, job.oms)
    if reason is not None:
        return "excluded", reason
    if not cert.certified(run):
        last = cert.last_run
        if last is None or run > last:
            upto = f" (certification goes up to run {last})" if last else ""
            return "waiting", f"not certified yet{upto}"
        return "excluded", f"not in the certification in force ({', '.join(cert.names)})"
    return None, None


def _readiness(dbs_files: list[DbsFile], dials_files: dict[str, dict[str, Any]],
               listed: bool, ended: datetime, at: datetime, job: Job
               ) -> tuple[str, str | None, dict[str, Any] | None]:
    """(status, reason, stuck info) of a wanted, certified, ended run in one dataset."""
    if not dbs_files:
        if listed:  # DIALS has rows but DBS no valid file: DBS invalidated them
            return "excluded", "DBS holds no valid file of the run in this dataset", None
        if at - ended < RECO_GRACE:
            return ("waiting", "no file of the run in DBS yet (PromptReco comes ~48 h after "
                    "the run)", None)
        return "excluded", "the dataset has no file of this run (DBS)", None
    threshold = timedelta(hours=job.stuck_after_hours)
    unindexed, moving, since = 0, Counter(), []
    for f in dbs_files:
        row = dials_files.get(f.lfn)
        if row is None:
            unindexed += 1
            since.append(datetime.fromtimestamp(f.created, at.tzinfo))
        elif row["status"] in IN_FLIGHT:
            moving[row["status"]] += 1
            since.append(_when(row, at))
    if not unindexed and not moving:
        return "due", None, None
    oldest = min(since)
    if at - oldest >= threshold:
        stuck = {"files": unindexed + sum(moving.values()), "since": iso(oldest),
                 "states": {**moving, **({"NOT_INDEXED": unindexed} if unindexed else {})}}
        return "due", (f"stuck upstream since {iso(oldest)}: ingested with the gap "
                       f"({_describe(unindexed, moving)})"), stuck
    return "waiting", f"DIALS not finished: {_describe(unindexed, moving)}", None


def _failed(dbs_files: list[DbsFile], dials_files: dict[str, dict[str, Any]]) -> dict[str, int]:
    """{status: files} of the run's files DIALS gave up on (COPY_ERROR, PARSING_ERROR...)."""
    found = Counter(row["status"] for f in dbs_files
                    if (row := dials_files.get(f.lfn)) is not None
                    and row["status"] not in (*IN_FLIGHT, "FINISHED"))
    return dict(sorted(found.items()))


def _describe(unindexed: int, moving: Counter) -> str:
    parts = [f"{n} file(s) {status}" for status, n in sorted(moving.items())]
    if unindexed:
        parts.append(f"{unindexed} DBS file(s) not indexed by DIALS yet")
    return ", ".join(parts)


def _when(row: dict[str, Any], at: datetime) -> datetime:
    text = row.get("last_modification_date") or row.get("creation_date")
    try:
        return utc(text) if text else at
    except ValueError:
        return at


def _dials_files(dials: DialsClient, dataset_id: int, dataset: str) -> dict[str, dict]:
    """LFN → DIALS file-index row (status, dates) of every file DIALS indexed."""
    rows = dials.list_all("file-index/", {
        "dataset_id": dataset_id,
        "fields": "logical_file_name,status,creation_date,last_modification_date"},
        what=f"DIALS file index of {dataset}")
    return {row["logical_file_name"]: row for row in rows
            if run_of(row.get("logical_file_name") or "") is not None}
