"""What each task of the nightly `dials_ingest` DAG does; the DAG file only wires these.

Each function turns the task's context and XCom (typed payloads, airflow/payloads.py) into
pipeline calls and back. Credentials come only from Airflow connections, inside the task
that needs them; nothing here puts them in XCom or logs.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from dialsflow.airflow import run_note
from dialsflow.airflow.connections import from_airflow
from dialsflow.airflow.failures import known_errors
from dialsflow.airflow.payloads import IngestResult, NightPlan, RunConfig, UnitTask
from dialsflow.airflow.ui.status import verdict_class
from dialsflow.config.connections import (
    CONN_IDS,
    CafSettings,
    DbsSettings,
    DialsSettings,
    OmsSettings,
)
from dialsflow.config.jobs import Job, select_jobs
from dialsflow.config.runs import RunSelection
from dialsflow.errors import (
    CertificationFailed,
    CompletenessFailed,
    ConditionsFailed,
    DialsflowError,
    InputError,
    UnitFailed,
    first_causes,
)
from dialsflow.pipeline.certification import refresh_job_certification
from dialsflow.pipeline.completeness import check_units
from dialsflow.pipeline.conditions import (
    ConditionsCheck,
    ConditionsReport,
    check_conditions,
    runs_lacking_conditions,
    write_conditions,
)
from dialsflow.pipeline.discovery import JobPlan, plan_job
from dialsflow.pipeline.ingest import RunResult, ingest_units, runs_to_do
from dialsflow.pipeline.preflight import preflight
from dialsflow.pipeline.units import Unit
from dialsflow.pipeline.verdict import Verdict, conditions_section, judge, report_document
from dialsflow.services.caf import CafClient
from dialsflow.services.dbs import DbsClient
from dialsflow.services.dials import DialsClient
from dialsflow.services.oms import oms_client
from dialsflow.store.layout import ensure_writable
from dialsflow.store.locks import unit_lock
from dialsflow.store.manifest import Manifest
from dialsflow.store.reports import write_report
from dialsflow.times import iso, now_iso, utc

log = logging.getLogger("dialsflow")

#: Runs of one dataset × ME fetched at once inside a mapped task; DIALS load is bounded by
#: (slots of the `dials_api` pool) × this.
RUN_CONCURRENCY = 2


def _dials_client(workspace: str, **kwargs: Any) -> DialsClient:
    """A DIALS client for one workspace, from the `dials_default` connection."""
    settings = DialsSettings.from_connection(from_airflow("dials_default"))
    return DialsClient(settings.for_workspace(workspace), **kwargs)


# ---- load_config ----------------------------------------------------------------------------


def window(context: dict[str, Any]) -> tuple[datetime, datetime]:
    """The run's data interval; manual runs without a logical date take the day before
    `run_after` (Airflow gives them no interval)."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return utc(start), utc(end)
    run_after = utc(context["dag_run"].run_after)
    return run_after - timedelta(days=1), run_after


@known_errors
def load_config(context: dict[str, Any]) -> dict[str, Any]:
    """Validate the jobs file, the params and the connections before any work is split.

    Returns the run's configuration (RunConfig JSON: small, secret-free) for the others.
    """
    params = context["params"]
    jobs = select_jobs(list(params.get("jobs") or []))
    runs_text = params.get("runs")
    RunSelection.parse(runs_text)  # clear error now rather than in every task
    if params.get("force") and not runs_text:
        raise InputError("force re-ingests complete runs: give the runs to re-ingest with it "
                         "(FIRST-LAST or a comma list); without them it would re-fetch every "
                         "certified run")
    preflight(jobs, {conn_id: from_airflow(conn_id) for conn_id in CONN_IDS})
    start, end = window(context)
    # `started` is not dag_run.start_date: `airflow dags test` sets that to the logical date.
    config = RunConfig(tuple(job.name for job in jobs), (iso(start), iso(end)), runs_text,
                       bool(params.get("force")), bool(params.get("test")),
                       context["dag_run"].run_id, now_iso())
    log.info("dialsflow: jobs %s, window [%s, %s)%s%s%s", ", ".join(config.jobs),
             *config.window, f", runs {runs_text}" if runs_text else "",
             ", force" if config.force else "", ", test mode" if config.test else "")
    return config.to_json()


# ---- discover -------------------------------------------------------------------------------


@known_errors
def discover(config_json: dict[str, Any]) -> dict[str, Any]:
    """Per job, every run with its status and tonight's units: NightPlan JSON.

    Statuses are judged at the end of the run's data interval (the night; for the nightly
    run that is now). The log shows each job's plan as `dialsflow plan` prints it.
    """
    config = RunConfig.from_json(config_json)
    _, at = config.interval
    oms_settings = OmsSettings.from_connection(from_airflow("oms_default"))
    caf_base = CafSettings.from_connection(from_airflow("caf_default"))
    night = NightPlan()
    with DbsClient(DbsSettings.from_connection(from_airflow("dbs_default"))) as dbs:
        for job in select_jobs(list(config.jobs)):
            with contextlib.ExitStack() as stack:
                dials = stack.enter_context(_dials_client(job.workspace))
                oms = stack.enter_context(oms_client(oms_settings, dials))
                caf = stack.enter_context(CafClient(job.caf_settings(caf_base),
                                                    energy=job.certification.energy))
                plan = plan_job(job, at=at, dials=dials, oms=oms, caf=caf, dbs=dbs,
                                manifest=Manifest(job.output), runs=config.selection,
                                force=config.force)
            log.info("dialsflow: plan of %s\n%s", job.name, plan.render())
            night.units.extend(UnitTask.from_json({**unit, "job": job.name,
                                                   "output": str(job.output)})
                               for unit in plan.units)
            night.jobs.append(_notes(plan))
    _check_map_length(len(night.units))
    return night.to_json()


def _notes(plan: JobPlan) -> dict[str, Any]:
    """What the report keeps of a plan: all but the units, and of the runs only those not
    complete or with something to say (a year of complete runs would swell XCom)."""
    notes = {k: v for k, v in plan.to_dict().items() if k not in ("units", "runs")}
    notes["counts"] = plan.counts()
    notes["runs"] = [r for r in plan.runs if r["status"] != "complete" or r["reason"]]
    return notes


def _check_map_length(n: int) -> None:
    """Fail here, clearly, rather than with Airflow's unmappable-length error."""
    from airflow.sdk import conf

    limit = conf.getint("core", "max_map_length")
    if n > limit:
        raise InputError(f"{n} dataset × ME units are due, more than [core] max_map_length "
                         f"({limit}): split the jobs or raise AIRFLOW__CORE__MAX_MAP_LENGTH")


# ---- ingest ---------------------------------------------------------------------------------


def unit_label(unit_json: dict[str, Any]) -> str:
    """Grid label of a mapped task (see UnitTask.label)."""
    return UnitTask.from_json(unit_json).label


@known_errors
def ingest(unit_json: dict[str, Any], config_json: dict[str, Any]) -> dict[str, Any]:
    """Fetch the unit's due runs into parquet; raise naming every run that failed."""
    task, config = UnitTask.from_json(unit_json), RunConfig.from_json(config_json)
    unit, outdir = task.unit, task.output
    ensure_writable(outdir)
    # Under the unit's lock, "what is missing" and "fetch it" are one step: overlapping
    # DAG runs (backfill days, a manual run beside the nightly one) never fetch a run twice.
    with unit_lock(outdir, unit.key):
        todo = runs_to_do(Manifest(outdir), unit, force=config.force, since=config.started)
        log.info("dialsflow: %s: %d runs due, %d to fetch now (%s × %s)", task.label,
                 len(unit.runs), len(todo), unit.key.dataset, unit.key.me)
        with _dials_client(unit.key.workspace, pool_size=RUN_CONCURRENCY) as client:
            report = ingest_units(client, [replace(unit, runs=tuple(todo))], outdir,
                                  test=config.test, concurrency=RUN_CONCURRENCY,
                                  on_result=RunLog(task.label, len(todo)),
                                  certified_by=task.certification_of(),
                                  stuck=frozenset(task.stuck))
    log.info("dialsflow: %s: %d runs written, %d failed", task.label, len(report.written),
             len(report.failed))
    if report.failed:
        causes = first_causes([f"run {r.run}: {cause(r)}" for r in report.failed])
        raise UnitFailed(f"{len(report.failed)} of {len(todo)} runs failed: {causes} "
                         f"({task.label})")
    return IngestResult(task.job, unit.key.workspace, unit.key.dataset, unit.key.me,
                        [r.run for r in report.written],
                        sum(r.rows for r in report.written),
                        sum(r.file_bytes for r in report.written)).to_json()


def cause(result: RunResult) -> str:
    """A failed run's error without the dataset × ME × run it starts with."""
    key = result.key
    return (result.error or "").removeprefix(f"{key.dataset} × {key.me} run {result.run}: ")


class RunLog:
    """One line per run of a mapped ingest task, never the full dataset × ME path: a failed
    run's line names run and cause first (they read without scrolling), then the task's
    label (job, short dataset, short ME)."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0

    def __call__(self, r: RunResult) -> None:
        self.done += 1
        at = f"[{self.done}/{self.total}]"
        if r.error:
            log.error("dialsflow: run %d failed: %s (%s) %s", r.run, cause(r), self.label, at)
        elif r.skipped:
            log.info("dialsflow: run %d: complete in the manifest, skipped %s", r.run, at)
        else:
            log.info("dialsflow: run %d: %d rows, %.2f MB JSON -> %.2f MB parquet %s", r.run,
                     r.rows, r.json_bytes / 1e6, r.file_bytes / 1e6, at)


# ---- conditions -----------------------------------------------------------------------------


@known_errors
def conditions(config_json: dict[str, Any], plan_json: dict[str, Any]) -> dict[str, Any]:
    """Per job with conditions enabled, write the per-LS OMS conditions of the runs due
    tonight (rewritten when the night is forced) and of every run with maps on disk but no
    table yet (a failed night resumes); raise naming the runs that failed."""
    config, night = RunConfig.from_json(config_json), NightPlan.from_json(plan_json)
    oms_settings = OmsSettings.from_connection(from_airflow("oms_default"))
    done: dict[str, Any] = {}
    failed: list[str] = []
    for job in select_jobs(list(config.jobs)):
        if not job.conditions.enabled:
            continue
        tonight = sorted({r for t in night.units if t.job == job.name for r in t.unit.runs})
        try:
            reports = _write_job_conditions(job, tonight, oms_settings, config.force)
        except DialsflowError as exc:  # no OMS client, unwritable output: the next job goes on
            log.error("dialsflow: conditions of job %s: %s", job.name, exc)
            failed.append(f"job {job.name}: {exc}")
            continue
        done[job.name] = {"written": [e.run for r in reports for e in r.written],
                          "ongoing": [n for r in reports for n in r.ongoing],
                          "failed": {str(n): c for r in reports for n, c in r.failed.items()}}
        failed += [f"job {job.name} run {n}: {c}" for r in reports for n, c in r.failed.items()]
        failed += [f"job {job.name} run {n}: OMS has no such run"
                   for r in reports for n in r.unknown]
    if failed:
        raise ConditionsFailed(f"conditions of {len(failed)} runs could not be written: "
                               f"{first_causes(failed)}")
    return done


@known_errors
def certification(config_json: dict[str, Any] | None) -> dict[str, Any]:
    """Per job, keep the Golden and DCS-only JSONs in force and the per-LS table of every run
    with maps (after tonight's maps landed, whatever failed); maps are not rewritten."""
    if config_json is None:  # the night already fails on load_config: nothing to retry here
        log.error("dialsflow: nothing to refresh: load_config failed (see its log)")
        return {}
    config = RunConfig.from_json(config_json)
    caf_base = CafSettings.from_connection(from_airflow("caf_default"))
    done: dict[str, Any] = {}
    failed: list[str] = []
    for job in select_jobs(list(config.jobs)):
        try:
            refresh = refresh_job_certification(job, caf_base)
        except DialsflowError as exc:  # CAF down for one class: the next job goes on
            log.error("dialsflow: certification of job %s: %s", job.name, exc)
            failed.append(f"job {job.name}: {exc}")
            continue
        log.info("dialsflow: job %s: %s", job.name, refresh.summary())
        done[job.name] = {"in_force": refresh.in_force, "runs": refresh.runs,
                          "golden_ls": refresh.golden_ls, "dcs_ls": refresh.dcs_ls,
                          "table_written": refresh.table_written}
    if failed:
        raise CertificationFailed("; ".join(failed))
    return done


def _write_job_conditions(job: Job, tonight: list[int], oms_settings: OmsSettings,
                          force: bool) -> list[ConditionsReport]:
    """Tonight's runs (rewritten when forced), then earlier runs with maps and no table."""
    ensure_writable(job.output)
    resumed = sorted(set(runs_lacking_conditions(job.output)) - set(tonight))
    with contextlib.ExitStack() as stack:
        # DIALS only when OMS is reached through it: a DIALS outage leaves direct OMS be
        dials = stack.enter_context(_dials_client(job.workspace)) \
            if oms_settings.via == "dials" else None
        oms = stack.enter_context(oms_client(oms_settings, dials))
        reports = [write_conditions(oms, job.output, tonight, job.conditions, force=force),
                   write_conditions(oms, job.output, resumed, job.conditions)]
    log.info("dialsflow: conditions of job %s, tonight's %d runs: %s; %d earlier runs without "
             "a table: %s", job.name, len(tonight), reports[0].summary(), len(resumed),
             reports[1].summary())
    return reports


def _conditions_checks(job: Job, units: list[Unit]) -> tuple[list[ConditionsCheck], list[int]]:
    """Tonight's runs: map LS (the manifest's) against the conditions tables; and every run
    with maps on disk still without a table."""
    if not job.conditions.enabled:
        return [], []
    manifest = Manifest(job.output)
    maps: dict[int, set[int]] = {}
    for unit in units:
        for run in unit.runs:
            entry = manifest.get(unit.key, run)
            maps.setdefault(run, set()).update(entry.ls_numbers if entry else ())
    return check_conditions(job.output, maps), runs_lacking_conditions(job.output)


# ---- completeness -------------------------------------------------------------------------


@known_errors
def completeness(config_json: dict[str, Any] | None, plan_json: dict[str, Any] | None,
                 results: list[dict[str, Any]], outlet_events: Any = None,
                 ti: Any = None) -> dict[str, Any]:
    """Compare DBS, DIALS and parquet lumisections of every unit × run due tonight, per
    job; write `<output>/_reports/<run id>.json`, log a table, and fail the DAG run on our
    failures (parquet lacking what DIALS has, failed units) or upstream gaps beyond the
    job's tolerance. A night that passes emits, through `outlet_events` (the task's
    context), an event for the output Asset of each job that wrote runs, and no other.
    Each job's verdict goes to XCom key "verdicts" of `ti` whatever it is, for the DAG
    run's note (airflow/run_note.py)."""
    if config_json is None or plan_json is None:
        step = "load_config" if config_json is None else "discover"
        raise CompletenessFailed(f"nothing to check: {step} failed (see its log)")
    config, night = RunConfig.from_json(config_json), NightPlan.from_json(plan_json)
    ingested = [IngestResult.from_json(r) for r in results if r]
    jobs = select_jobs(list(config.jobs))
    with contextlib.ExitStack() as stack:
        # One DBS client, and one DIALS client per workspace with something to check, for
        # all jobs.
        dbs = stack.enter_context(DbsClient(
            DbsSettings.from_connection(from_airflow("dbs_default"))))
        busy = {task.job for task in night.units}
        dials = {ws: stack.enter_context(_dials_client(ws))
                 for ws in sorted({j.workspace for j in jobs if j.name in busy})}
        verdicts = {job.name: _judge_job(job, config, night, ingested, dbs, dials)
                    for job in jobs}
    for name, (verdict, _, _) in verdicts.items():
        log.info("dialsflow: job %s: %s", name, verdict.text)
    if ti is not None:
        ti.xcom_push(key=run_note.VERDICTS_KEY, value={
            name: run_note.job_verdict(kind, verdict.failures)
            for name, (verdict, _, kind) in verdicts.items()})
    failed = {name: verdict for name, (verdict, _, _) in verdicts.items() if verdict.failed}
    if failed:
        raise CompletenessFailed("; ".join(f"job {name}: {v.first_failures()}"
                                           for name, v in failed.items()))
    if outlet_events is not None:
        _emit_written(outlet_events, jobs, ingested)
    return {name: {"verdict": verdict.text, "report": path}
            for name, (verdict, path, _) in verdicts.items()}


def _emit_written(outlet_events: Any, jobs: list[Job], ingested: list[IngestResult]) -> None:
    """An event on each job's output Asset, through the task's alias, for jobs that wrote
    runs tonight; its extra says how many."""
    from dialsflow.airflow.assets import OUTPUTS, job_asset

    for job in jobs:
        runs = {run for r in ingested if r.job == job.name for run in r.written}
        if runs:
            outlet_events[OUTPUTS].add(job_asset(job.name, job.output_uri),
                                       extra={"runs_written": len(runs)})
            log.info("dialsflow: job %s wrote %d runs: event on its output asset", job.name,
                     len(runs))


def _judge_job(job: Job, config: RunConfig, night: NightPlan, results: list[IngestResult],
               dbs: DbsClient, dials: dict[str, DialsClient]) -> tuple[Verdict, str, str]:
    """One job's verdict, the path of its report and the verdict as the page names it;
    `dials` holds a client for the job's workspace when the job has units to check."""
    mine = [task.unit for task in night.units if task.job == job.name]
    ingested = [r for r in results if r.job == job.name]
    fetched = {(r.dataset, r.me) for r in ingested}
    failed = [u for u in mine if (u.key.dataset, u.key.me) not in fetched]
    scope = {u.key: RunSelection.of(u.runs) for u in mine}
    report = None
    if scope:
        report = check_units(job.output, scope, dbs, dials)
    notes = night.job_notes(job.name)
    explained = {(item["dataset"], item["run"])
                 for item in [*notes.get("stuck", []), *notes.get("failed_upstream", [])]}
    checks, lacking = _conditions_checks(job, mine)
    unwritten = sorted({c.run for c in checks if not c.written} | set(lacking))
    verdict = Verdict(judge(report, [u.key for u in failed], job.completeness_tolerance,
                            test=config.test, explained=explained,
                            unwritten_conditions=unwritten), report, explained)
    if report is not None:
        log.info("dialsflow: completeness of job %s (DBS vs DIALS vs parquet, tolerance "
                 "%.0f%%):\n%s", job.name, 100 * job.completeness_tolerance,
                 report.render_table(verdict=verdict.headline))
    document = report_document(
        job=job.name, tolerance=job.completeness_tolerance,
        night={"run_id": config.run_id, "window": list(config.window), "runs": config.runs,
               "force": config.force, "test": config.test},
        verdict=verdict, failed_units=[(u.key, u.runs) for u in failed],
        ingested=[r.to_json() for r in ingested], notes=notes,
        conditions=conditions_section(job.conditions, checks, unwritten))
    path = write_report(job.output, config.run_id, document)
    log.info("dialsflow: report written to %s", path)
    return verdict, str(path), verdict_class(document)
