"""What the DAG file needs at parse time: cheap, offline, never failing the parse.

A broken jobs file must not make the DAG disappear from the UI: the first task reports it
with a clear message instead, so here any error just means "no assets declared".
"""

from __future__ import annotations

import logging

from airflow.sdk import Asset

log = logging.getLogger("dialsflow")


def output_assets() -> list[Asset]:
    """One Asset per job of the jobs file: downstream DAGs can be scheduled on a job's output."""
    from dialsflow.config.jobs import load_jobs  # tiny JSON file, no network

    try:
        jobs = load_jobs()
    except Exception as exc:  # noqa: BLE001 - reported by the load_config task
        log.warning("dialsflow: jobs file unusable at parse time (%s); no assets declared", exc)
        return []
    return [job_asset(job.name, job.output_uri) for job in jobs.values()]


def job_asset(name: str, uri: str) -> Asset:
    return Asset(name=f"dialsflow/{name}", uri=uri)
