"""What is due: for one job and one time window, the dataset × ME units and their runs.

A run is due for a concrete dataset × ME when, in this order:
1. OMS says it ended in [window_start − lookback, window_end) and it passes the job's OMS
   filters (an explicit run selection replaces the window, never the filters);
2. the job's CAF JSON (latest of its class and kind) certifies it. The JSON is cumulative
   and has no delta feed, so "newly certified" is found by step 4: certified runs that are
   not complete yet;
3. DIALS holds it for the dataset, completely ingested (see `_availability`); otherwise it
   is *pending*: not a failure, a later night within the lookback picks it up. Only the
   datasets of the run's acquisition era (OMS `era` = the era in the dataset name) count;
4. the manifest does not record it as complete for that ME (unless `force`).

Runs failing 1 or 2 are *skipped*, with the reason (ongoing, no stable beams, not in the
Golden JSON, ...). The plan is plain JSON: each unit is the kwargs of one mapped Airflow
task and converts to `dialsflow.pipeline.units.Unit` with `Unit.from_json`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dialsflow.config.connections import DEFAULT_WORKSPACE
from dialsflow.config.jobs import Job
from dialsflow.config.runs import RunSelection
from dialsflow.errors import InputError
from dialsflow.pipeline.run_filters import split_by_filters
from dialsflow.pipeline.units import Unit, expand_datasets, expand_mes
from dialsflow.services.caf import CafClient, CertificationJson
from dialsflow.services.dials import DialsClient
from dialsflow.services.oms import OmsRun, OmsRuns
from dialsflow.store.layout import UnitKey
from dialsflow.store.manifest import Manifest
from dialsflow.times import iso, utc

#: DIALS file-index statuses of files still being ingested (docs/reference/dials.md §2.2).
IN_FLIGHT = ("PENDING", "STARTED")
#: CMS LFNs end in .../<run // 10^6 as 3 digits>/<3>/<3>/<5-digit block>/<file>.root
_LFN_RUN = re.compile(r"/(\d{3})/(\d{3})/(\d{3})/\d{5}/[^/]+$")


# ---- the plan --------------------------------------------------------------------------


@dataclass
class JobPlan:
    """The result of `find_due`; `to_dict()` is JSON-serialisable (XCom-safe)."""

    job: str
    workspace: str
    window_start: str | None  # ISO UTC, lookback included; None for an explicit selection
    window_end: str | None
    selection: str | None  # the explicit runs, as text
    force: bool
    certification: dict[str, str]  # name, url, last_modified
    #: unit dicts (`Unit.to_json`) plus "complete": runs of the window already complete
    units: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)  # {dataset, run, reason}
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {dataset|None, run, reason}
    already_complete: int = 0  # (run, ME) pairs the manifest has complete

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobPlan:
        return cls(**data)

    def due_units(self) -> list[Unit]:
        return [Unit.from_json(u) for u in self.units]

    @property
    def due_runs(self) -> dict[str, list[int]]:
        """Dataset → runs due for at least one ME."""
        out: dict[str, set[int]] = {}
        for u in self.units:
            if u["runs"]:
                out.setdefault(u["dataset"], set()).update(u["runs"])
        return {ds: sorted(runs) for ds, runs in out.items()}

    def summary(self) -> str:
        """A few plain lines for the task log."""
        scope = (f"runs {self.selection}" if self.selection else
                 f"runs ended in [{self.window_start}, {self.window_end})")
        pairs = sum(len(u["runs"]) for u in self.units)
        fetching = sum(1 for u in self.units if u["runs"])
        lines = [f"job {self.job} ({self.workspace}): {scope}; certification "
                 f"{self.certification.get('name')} ({self.certification.get('last_modified')})"
                 f"{'; force' if self.force else ''}",
                 f"due: {fetching} unit(s), {pairs} run × ME; already complete: "
                 f"{self.already_complete}; pending: {len(self.pending)}; skipped: "
                 f"{len(self.skipped)}"]
        for ds, runs in self.due_runs.items():
            lines.append(f"  due {ds}: {_runs_text(runs)}")
        for p in self.pending:
            lines.append(f"  pending {p['dataset']} run {p['run']}: {p['reason']}")
        for s in self.skipped:
            where = f"{s['dataset']} " if s.get("dataset") else ""
            lines.append(f"  skipped {where}run {s['run']}: {s['reason']}")
        return "\n".join(lines)


def _runs_text(runs: list[int]) -> str:
    return ",".join(map(str, runs)) if len(runs) <= 12 else \
        f"{len(runs)} runs {runs[0]}..{runs[-1]}"


# ---- discovery -------------------------------------------------------------------------


def find_due(job: Job, window_start: datetime, window_end: datetime, *, dials: DialsClient,
             oms: OmsRuns, caf: CafClient | CertificationJson, manifest: Manifest,
             runs: RunSelection | None = None, force: bool = False) -> JobPlan:
    """The due plan of `job` for the data interval [window_start, window_end).

    `dials` must talk to the job's workspace; `caf` is a client for the job's class/kind
    (see `Job.caf_settings`) or an already downloaded CertificationJson; `runs` (from
    `RunSelection.parse`) replaces the time window; `force` ignores the manifest.
    Nothing is logged here: the caller logs `plan.summary()` once.
    """
    workspace = dials.settings.workspace or DEFAULT_WORKSPACE
    if workspace != job.workspace:
        raise InputError(f"job {job.name!r} is for workspace {job.workspace!r} but the DIALS "
                         f"client talks to {workspace!r}")
    cert = caf if isinstance(caf, CertificationJson) else caf.certification()
    plan = JobPlan(job.name, job.workspace, None, None, None, force,
                   {"name": cert.name, "url": cert.url, "last_modified": cert.last_modified})

    # 1. OMS: ended runs of the window (or the explicit selection) that pass the filters.
    if runs is None:
        start = utc(window_start) - timedelta(days=job.lookback_days)
        plan.window_start, plan.window_end = iso(start), iso(window_end)
        ended = oms.runs_ended_between(start, window_end)
    else:
        plan.selection = runs.text
        ended = _oms_records(oms, runs, plan)
    passing, rejected = split_by_filters(ended, job.oms)
    for run, reason in rejected:
        plan.skipped.append({"dataset": None, "run": run.run_number, "reason": reason})

    # 2. Certification.
    certified: dict[int, str | None] = {}  # run -> OMS era
    for run in passing:
        if cert.certified(run.run_number):
            certified[run.run_number] = run.era
        else:
            plan.skipped.append({"dataset": None, "run": run.run_number,
                                 "reason": _uncertified(cert, run.run_number)})
    if not certified:
        return plan

    # 3. DIALS, per concrete dataset; 4. the manifest, per ME.
    datasets = expand_datasets(dials, list(job.dataset_patterns))
    mes = expand_mes(dials, list(job.me_patterns), job.me_type)
    for dataset, dataset_id in datasets.items():
        era = dataset_era(dataset)
        # A run belongs to the datasets of its acquisition era only: a pattern over several
        # eras must not report every run as pending in the other eras' datasets.
        mine = [r for r, run_era in certified.items() if not (era and run_era) or run_era == era]
        if not mine:
            continue
        available, waiting = _availability(dials, dataset_id, dataset, mine)
        plan.pending += [{"dataset": dataset, "run": r, "reason": why} for r, why in waiting]
        if not available:
            continue
        for me, (me_id, dim) in mes.items():
            key = UnitKey(job.workspace, dataset, me)
            due, done = [], []
            for run in available:
                (done if not force and manifest.is_complete(key, run) else due).append(run)
            plan.already_complete += len(done)
            # Units with only complete runs stay in the plan: the completeness check covers
            # every run of the window, not just the ones fetched tonight.
            plan.units.append({**Unit(key, dataset_id, me_id, dim, tuple(due)).to_json(),
                               "complete": done})
    return plan


def dataset_era(dataset: str) -> str | None:
    """'/ZeroBias/Run2024C-PromptReco-v1/DQMIO' → 'Run2024C' (the DBS acquisition era)."""
    parts = dataset.split("/")
    if len(parts) != 4 or not parts[2]:
        return None
    return parts[2].split("-", 1)[0] or None


def _oms_records(oms: OmsRuns, runs: RunSelection, plan: JobPlan) -> list[OmsRun]:
    """The OMS records of explicitly selected runs; unknown and ongoing ones are skipped."""
    found = [r for r in oms.runs_numbered(*runs.bounds) if r.run_number in runs]
    for n in sorted((runs.listed or frozenset()) - {r.run_number for r in found}):
        plan.skipped.append({"dataset": None, "run": n, "reason": "unknown to OMS"})
    for r in found:
        if not r.ended:
            plan.skipped.append({"dataset": None, "run": r.run_number,
                                 "reason": "still ongoing (OMS end_time null)"})
    return [r for r in found if r.ended]


def _uncertified(cert: CertificationJson, run: int) -> str:
    last = cert.last_run
    if last is None:
        return f"not certified yet ({cert.name})"
    if run > last:
        return f"not certified yet ({cert.name} goes up to run {last})"
    return f"not certified in {cert.name}"


def _availability(dials: DialsClient, dataset_id: int, dataset: str,
                  runs: Iterable[int]) -> tuple[list[int], list[tuple[int, str]]]:
    """(runs ready in DIALS, [(run, why it is pending)]).

    "Complete LS ingestion" from what DIALS exposes (docs/reference/dials.md §2.2, §2.3):
    `run/` lists the run for the dataset, and no file of the run is PENDING or STARTED in
    `file-index/` (the run number is read from the CMS LFN): DIALS will not add more to it
    by itself.
    A file that failed for good (e.g. COPY_ERROR) or single LS without per-LS data leave
    holes DIALS will not fill: such a run is ingested with what DIALS has, and the hole is
    the completeness task's business (an upstream gap, failing the DAG run only beyond the
    job's tolerance), so it is reported every night instead of waiting silently.
    """
    wanted = sorted(set(runs))
    rows = dials.list_all("run/", {"dataset_id": dataset_id, "run_number__gte": wanted[0],
                                   "run_number__lte": wanted[-1],
                                   "fields": "run_number"},
                          what=f"runs of {dataset}")
    in_dials = {int(r["run_number"]): r for r in rows}
    files = _file_states(dials, dataset_id, dataset, set(wanted))
    ready, pending = [], []
    for run in wanted:
        states = files.get(run, {})
        moving = sum(n for s, n in states.items() if s in IN_FLIGHT)
        row = in_dials.get(run)
        if row is None:
            pending.append((run, f"not in DIALS yet ({moving} file(s) being ingested)" if moving
                            else "not in DIALS yet (no DQMIO file ingested: waiting for "
                                 "reconstruction, DBS or the DIALS indexer)"))
            continue
        if moving:
            pending.append((run, f"DIALS ingestion in progress: {moving} file(s) "
                                 f"{'/'.join(s for s in IN_FLIGHT if s in states)}"))
            continue
        ready.append(run)
    return ready, pending


def _file_states(dials: DialsClient, dataset_id: int, dataset: str,
                 runs: set[int]) -> dict[int, dict[str, int]]:
    """Run → {status: files} for the files DIALS is still ingesting (small lists)."""
    out: dict[int, dict[str, int]] = {}
    for status in IN_FLIGHT:
        rows = dials.list_all("file-index/", {"dataset_id": dataset_id, "status": status,
                                              "fields": "logical_file_name,status"},
                              what=f"{status} files of {dataset}")
        for row in rows:
            m = _LFN_RUN.search(row.get("logical_file_name") or "")
            if m is None:
                continue
            run = int("".join(m.groups()))
            if run in runs:
                states = out.setdefault(run, {})
                states[status] = states.get(status, 0) + 1
    return out
