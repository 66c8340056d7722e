"""What the DAG file needs at parse time: cheap, offline, never failing the parse.

A broken jobs file must not make the DAG disappear from the UI: the first task reports it
with a clear message instead, so here any error just means "no assets declared".
"""

from __future__ import annotations

import logging

from airflow.sdk import Asset

log = logging.getLogger("dialsflow")
PREFIX = "dialsflow/"


def output_assets() -> list[Asset]:
    """One Asset per job of the jobs file: downstream DAGs can be scheduled on a job's output."""
    from dialsflow.config.jobs import load_jobs  # tiny JSON file, no network

    try:
        jobs = load_jobs()
    except Exception as exc:  # noqa: BLE001 - reported by the load_config task
        log.warning("dialsflow: jobs file unusable at parse time (%s); no assets declared", exc)
        return []
    return [job_asset(job.name, job.output_uri) for job in jobs.values()]


def export_assets() -> list[Asset]:
    """The output assets of the jobs with an `export`: what `dials_export` is scheduled on."""
    from dialsflow.config.jobs import load_jobs

    try:
        jobs = load_jobs()
    except Exception as exc:  # noqa: BLE001 - the ingest DAG's load_config task reports it
        log.warning("dialsflow: jobs file unusable at parse time (%s); no exports scheduled", exc)
        return []
    return [job_asset(job.name, job.output_uri) for job in jobs.values() if job.export]


def job_name(asset_name: str) -> str | None:
    """The job of an asset `job_asset` made (None for any other asset)."""
    return asset_name.removeprefix(PREFIX) if asset_name.startswith(PREFIX) else None


def job_asset(name: str, uri: str) -> Asset:
    return Asset(name=PREFIX + name, uri=uri)
