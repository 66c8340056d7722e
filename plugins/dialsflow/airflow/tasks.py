"""What each task of the nightly `dials_ingest` DAG does; the DAG file only wires these.

Everything crossing task boundaries (XCom) is small JSON: job names, the time window, and
per dataset × ME unit its ids and run numbers. Credentials come only from Airflow
connections, inside the task that needs them; nothing here puts them in XCom or logs.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import requests

from dialsflow.config.connections import (
    CONN_IDS,
    CafSettings,
    ConnectionConfigError,
    DbsSettings,
    DialsSettings,
    OmsSettings,
    from_airflow,
)
from dialsflow.config.inputs import parse_runs
from dialsflow.config.jobs import Job, select_jobs
from dialsflow.errors import DialsflowError, InputError, ServiceError
from dialsflow.pipeline import discovery
from dialsflow.pipeline.completeness import check_units
from dialsflow.pipeline.discovery import unit_from_dict
from dialsflow.pipeline.fetch import ensure_writable, with_workspace
from dialsflow.pipeline.ingest import ingest_units
from dialsflow.pipeline.units import Unit
from dialsflow.services.caf import CafClient
from dialsflow.services.dbs import DbsClient
from dialsflow.services.dials import DialsClient
from dialsflow.services.http import describe_error
from dialsflow.services.oms import oms_client
from dialsflow.store import atomic
from dialsflow.store.locks import unit_lock
from dialsflow.store.manifest import Manifest
from dialsflow.times import iso, now_iso, utc

log = logging.getLogger("dialsflow")

#: Runs of one dataset × ME fetched at once inside a mapped task; DIALS load is bounded by
#: (slots of the `dials_api` pool) × this.
RUN_CONCURRENCY = 2


class UnitFailed(DialsflowError):
    """Some runs of a dataset × ME could not be ingested; the message names each one."""


class CompletenessFailed(DialsflowError):
    """Our output lacks lumisections DIALS has, upstream gaps exceed tolerance, or units failed."""


# ---- load_config ----------------------------------------------------------------------------


def window(context: dict[str, Any]) -> tuple[datetime, datetime]:
    """The run's data interval; manual runs without a logical date take the day before
    `run_after` (Airflow gives them no interval)."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return utc(start), utc(end)
    run_after = utc(context["dag_run"].run_after)
    return run_after - timedelta(days=1), run_after


def load_config(context: dict[str, Any]) -> dict[str, Any]:
    """Validate the jobs file, the params and the connections before any work is split.

    Returns the run's configuration (small, secret-free) for the other tasks.
    """
    params = context["params"]
    jobs = select_jobs(list(params.get("jobs") or []))
    wanted = [job.name for job in jobs]
    runs_text = params.get("runs")
    parse_runs(runs_text)  # clear error now rather than in every task
    preflight(jobs)
    start, end = window(context)
    dag_run = context["dag_run"]
    config = {
        "jobs": wanted,
        "window": [iso(start), iso(end)],
        "runs": runs_text,
        "force": bool(params.get("force")),
        "test": bool(params.get("test")),
        "run_id": dag_run.run_id,
        # Not dag_run.start_date: `airflow dags test` sets it to the logical date.
        "started": now_iso(),
    }
    log.info("dialsflow: jobs %s, window [%s, %s)%s%s%s", ", ".join(wanted), *config["window"],
             f", runs {runs_text}" if runs_text else "", ", force" if config["force"] else "",
             ", test mode" if config["test"] else "")
    return config


def preflight(jobs: list[Any]) -> None:
    """Every connection defined and every service answering, before work is split: a typo
    in a connection fails this first task with one line instead of every mapped task."""
    conns = {conn_id: from_airflow(conn_id) for conn_id in CONN_IDS}
    settings = DialsSettings.from_connection(conns["dials_default"])
    client = DialsClient(settings)  # obtains a token: wrong credentials fail here
    try:
        known = client.get_json("workspaces/", what="DIALS workspaces")["workspaces"]
    finally:
        client.close()
    for job in jobs:
        if job.workspace not in known:
            raise InputError(f"job {job.name!r}: DIALS has no workspace {job.workspace!r}; "
                             f"known: {', '.join(known)}")
    dbs = DbsClient(DbsSettings.from_connection(conns["dbs_default"]))  # proxy file exists?
    dbs.close()
    dbs_cert = dbs.settings.cert  # cmsweb wants it even to answer
    for conn_id in ("oms_default", "dbs_default", "caf_default"):
        conn = conns[conn_id]
        try:
            requests.get(conn.host, timeout=20, verify=conn.verify(),
                         cert=dbs_cert if conn_id == "dbs_default" else None)
        except requests.RequestException as exc:
            raise ServiceError(f"cannot reach {conn.host} ({conn_id}): {describe_error(exc)}; "
                               "check the connection's host") from None


# ---- discover -------------------------------------------------------------------------------


def discover(config: dict[str, Any]) -> dict[str, Any]:
    """Per job, what is due; returns {"units": mapped-task kwargs (units with due runs),
    "checks": every unit with its due and already complete runs, "plans": per-job notes}."""
    start, end = (utc(t) for t in config["window"])
    selection = parse_runs(config["runs"])
    oms_settings = OmsSettings.from_connection(from_airflow("oms_default"))
    caf_base = CafSettings.from_connection(from_airflow("caf_default"))
    units: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    plans: list[dict[str, Any]] = []
    for job in select_jobs(config["jobs"]):
        with contextlib.ExitStack() as stack:
            dials = _dials_client(job.workspace)
            stack.callback(dials.close)
            oms = oms_client(oms_settings, dials)
            stack.callback(oms.close)
            caf = stack.enter_context(CafClient(job.caf_settings(caf_base)))
            plan = discovery.discover(job, start, end, dials=dials, oms=oms, caf=caf,
                                      manifest=Manifest(job.output), runs=selection,
                                      force=config["force"])
        log.info("dialsflow: %s", plan.summary())
        for unit in plan.units:
            tagged = {**unit, "job": job.name, "output": str(job.output)}
            checks.append(tagged)
            if unit["runs"]:
                units.append({k: v for k, v in tagged.items() if k != "complete"})
        plans.append({k: v for k, v in plan.to_dict().items() if k != "units"})
    _check_map_length(len(units))
    return {"units": units, "checks": checks, "plans": plans}


def _check_map_length(n: int) -> None:
    """Fail here, clearly, rather than with Airflow's unmappable-length error."""
    from airflow.sdk import conf

    limit = conf.getint("core", "max_map_length")
    if n > limit:
        raise InputError(f"{n} dataset × ME units are due, more than [core] max_map_length "
                         f"({limit}): split the jobs or raise AIRFLOW__CORE__MAX_MAP_LENGTH")


def _dials_client(workspace: str, **kwargs: Any) -> DialsClient:
    """A DIALS client for one workspace, from the `dials_default` connection."""
    settings = DialsSettings.from_connection(from_airflow("dials_default"))
    return DialsClient(with_workspace(settings, workspace), **kwargs)


# ---- ingest ---------------------------------------------------------------------------------


def unit_label(unit: dict[str, Any]) -> str:
    """Grid label of a mapped task: job, dataset and ME (the ME's last path part)."""
    return f"{unit['job']}: {unit['dataset']} × {unit['me'].rsplit('/', 1)[-1]}"


def runs_to_do(manifest: Manifest, unit: Unit, *, force: bool, since: str) -> list[int]:
    """Runs still missing. On a retry of a forced run, runs re-ingested by this DAG run
    (entry written after it started) are kept: retries resume instead of restarting."""
    todo = []
    for run in unit.runs:
        entry = manifest.get(unit.key, run) if manifest.is_complete(unit.key, run) else None
        if entry is None or (force and entry.ingested_at < since):
            todo.append(run)
    return todo


def ingest(unit: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Fetch the unit's due runs into parquet; raise naming every run that failed."""
    outdir = Path(unit["output"])
    ensure_writable(outdir)
    u = unit_from_dict(unit)
    # Under the unit's lock, "what is missing" and "fetch it" are one step: overlapping
    # DAG runs (backfill days, a manual run beside the nightly one) never fetch a run twice.
    with unit_lock(outdir, u.key):
        todo = runs_to_do(Manifest(outdir), u, force=config["force"], since=config["started"])
        log.info("dialsflow: %s: %d runs due, %d to fetch now", u.key, len(u.runs), len(todo))
        client = _dials_client(u.key.workspace, pool_size=RUN_CONCURRENCY)
        with contextlib.closing(client):
            report = ingest_units(client, [replace(u, runs=tuple(todo))], outdir,
                                  test=config["test"], concurrency=RUN_CONCURRENCY)
    for failed in report.failed:
        log.error("dialsflow: failed: %s", failed.error)
    if report.failed:
        causes = "; ".join(str(r.error) for r in report.failed[:3])
        more = f" (and {len(report.failed) - 3} more)" if len(report.failed) > 3 else ""
        raise UnitFailed(f"{len(report.failed)} of {len(todo)} runs failed: {causes}{more}")
    return {"job": unit["job"], "workspace": u.key.workspace, "dataset": u.key.dataset,
            "me": u.key.me, "written": [r.run for r in report.written],
            "rows": sum(r.rows for r in report.written),
            "bytes": sum(r.file_bytes for r in report.written)}


# ---- completeness -------------------------------------------------------------------------

REPORTS_DIR = "_reports"


def completeness(config: dict[str, Any] | None, plan: dict[str, Any] | None,
                 results: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare DBS, DIALS and parquet lumisections of every unit × run of the window, per
    job; write `<output>/_reports/<run id>.json`, log a table, and fail the DAG run on our
    failures (parquet lacking what DIALS has, failed units) or upstream gaps beyond the
    job's tolerance."""
    if config is None or plan is None:
        step = "load_config" if config is None else "discover"
        raise CompletenessFailed(f"nothing to check: {step} failed (see its log)")
    jobs = select_jobs(config["jobs"])
    with contextlib.ExitStack() as stack:
        # One DBS client, and one DIALS client per workspace with something to check, for
        # all jobs.
        dbs = stack.enter_context(DbsClient(
            DbsSettings.from_connection(from_airflow("dbs_default"))))
        busy = {u["job"] for u in plan["checks"]}
        dials = {ws: stack.enter_context(contextlib.closing(_dials_client(ws)))
                 for ws in sorted({j.workspace for j in jobs if j.name in busy})}
        verdicts = {job.name: judge_job(job, config, plan, results, dbs, dials)
                    for job in jobs}
    failed = {name: v for name, v in verdicts.items() if v["failures"]}
    for name, verdict in verdicts.items():
        log.info("dialsflow: job %s: %s", name, verdict["verdict"])
    if failed:
        raise CompletenessFailed("; ".join(f"job {name}: {_first(v['failures'])}"
                                           for name, v in failed.items()))
    return {name: {"verdict": v["verdict"], "report": v["report"]}
            for name, v in verdicts.items()}


def _first(failures: list[str], n: int = 3) -> str:
    more = f" (and {len(failures) - n} more, see the report)" if len(failures) > n else ""
    return "; ".join(failures[:n]) + more


def judge_job(job: Job, config: dict[str, Any], plan: dict[str, Any],
              results: list[dict[str, Any]], dbs: DbsClient,
              dials: dict[str, DialsClient]) -> dict[str, Any]:
    """One job's completeness report and verdict (written to disk, returned as a summary);
    `dials` holds a client for the job's workspace when the job has units to check."""
    name = job.name
    mine = [u for u in plan["checks"] if u["job"] == name]
    ingested = [r for r in results if r and r.get("job") == name]
    fetched = {(r["dataset"], r["me"]) for r in ingested}
    failed_units = [u for u in mine if u["runs"] and (u["dataset"], u["me"]) not in fetched]
    scope = {unit_from_dict(u).key: frozenset([*u["runs"], *u["complete"]]) for u in mine}
    report = None
    if scope:
        report = check_units(job.output, scope, dbs, dials)
        log.info("dialsflow: completeness of job %s (DBS vs DIALS vs parquet):\n%s", name,
                 report.render_table())
    failures = judge(report, failed_units, job.completeness_tolerance, test=config["test"])
    job_plan = next((p for p in plan["plans"] if p["job"] == name), {})
    verdict = ("FAILED: " + "; ".join(failures) if failures else
               "complete" if report is None or report.complete else
               "complete within tolerance (upstream gaps reported)")
    document = {
        "job": name, "run_id": config["run_id"], "window": config["window"],
        "runs": config["runs"], "force": config["force"], "test": config["test"],
        "verdict": verdict, "failures": failures,
        "tolerance": job.completeness_tolerance,
        "failed_units": [{"dataset": u["dataset"], "me": u["me"], "runs": u["runs"]}
                         for u in failed_units],
        "ingested": ingested,
        "certification": job_plan.get("certification"),
        "pending": job_plan.get("pending", []), "skipped": job_plan.get("skipped", []),
        "completeness": report.to_json() if report is not None else None,
    }
    path = job.output / REPORTS_DIR / f"{safe_run_id(config['run_id'])}.json"
    atomic.write_bytes(path, orjson.dumps(document, option=orjson.OPT_INDENT_2))
    log.info("dialsflow: report written to %s", path)
    return {"verdict": verdict, "failures": failures, "report": str(path)}


def judge(report: Any, failed_units: list[dict[str, Any]], tolerance: float, *,
          test: bool = False) -> list[str]:
    """Why the job fails (empty: it does not). Upstream gaps fail only beyond tolerance;
    in test mode truncated output is expected, so only failed units count."""
    failures = [f"ingestion failed for {u['dataset']} × {u['me']} (see its mapped task log)"
                for u in failed_units]
    if report is None or test:
        return failures
    for c in report.checks:
        where = f"{c.key.dataset} × {c.key.me} run {c.run}"
        if c.ours:
            failures.append(f"{where}: parquet lacks {len(c.ours)} LS that DIALS has")
        gap = c.dials_missing_fraction or 0.0
        if gap > tolerance:
            failures.append(f"{where}: DIALS lacks {gap:.0%} of the DBS lumisections "
                            f"(tolerance {tolerance:.0%})")
    return failures


def safe_run_id(run_id: str) -> str:
    """Run ids hold ':' and '+'; keep file names portable."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)


__all__ = ["CompletenessFailed", "ConnectionConfigError", "UnitFailed", "completeness",
           "discover", "ingest", "load_config", "unit_label", "window"]
