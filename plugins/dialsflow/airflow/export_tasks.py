"""What the `dials_export` DAG does: refresh the exports of the jobs whose output changed.

A run triggered by assets refreshes the jobs behind the triggering assets; a manual run the
jobs of its `jobs` param, or every job with an `export`. Each export is skipped when it is
already up to date (pipeline/export.py), so a refresh after a night that wrote nothing new is
cheap. No connection is needed: exports are read from and written to local folders.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from dialsflow.airflow.assets import job_name
from dialsflow.config.jobs import Job, load_jobs
from dialsflow.errors import InputError
from dialsflow.pipeline.export import export_job

log = logging.getLogger("dialsflow")


def triggering_jobs(events: Iterable[Any]) -> list[str]:
    """Job names of the triggering assets (the keys of `triggering_asset_events`)."""
    names = (job_name(getattr(asset, "name", "")) for asset in events)
    return sorted({n for n in names if n})


def jobs_to_export(context: Mapping[str, Any], path: str | None = None) -> list[Job]:
    """The jobs this run refreshes: triggering assets first, else the `jobs` param, else all
    jobs with an export. A named job without an export is an error."""
    jobs = load_jobs(path)
    names = triggering_jobs(context.get("triggering_asset_events") or {}) or list(
        (context.get("params") or {}).get("jobs") or [])
    if not names:
        return [job for job in jobs.values() if job.export]
    unknown = [n for n in names if n not in jobs]
    if unknown:
        raise InputError(f"no job {', '.join(map(repr, unknown))} in the jobs file; known "
                         f"jobs: {', '.join(jobs)}")
    without = [n for n in names if not jobs[n].export]
    if without:
        raise InputError(f"job {', '.join(map(repr, without))} has no export in the jobs file")
    return [jobs[n] for n in names]


def refresh(context: Mapping[str, Any], path: str | None = None) -> dict[str, Any]:
    """Export every unit of each chosen job; returns a small summary (XCom)."""
    summary: dict[str, Any] = {}
    for job in jobs_to_export(context, path):
        results = export_job(job)
        written = sum(r.written for r in results)
        log.info("export of job %s: %d files written, %d up to date, into %s", job.name,
                 written, len(results) - written, job.export.to if job.export else "-")
        summary[job.name] = [r.to_json() for r in results]
    return {"jobs": summary}
