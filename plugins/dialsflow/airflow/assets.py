"""What the DAG file needs at parse time: cheap, offline, never failing the parse.

A broken jobs file must not make the DAG disappear from the UI: the first task reports it
with a clear message instead, so here any error just means "no assets declared".
"""

from __future__ import annotations

import logging

from airflow.sdk import Asset, AssetAlias

log = logging.getLogger("dialsflow")
PREFIX = "dialsflow/"
#: What the nightly DAG's completeness task declares: through it the task emits an event
#: for the output Asset of each job that wrote data, and only those (a declared Asset
#: outlet gets an event whenever the task succeeds, data or not).
OUTPUTS = AssetAlias(name="dialsflow/written")


def job_examples(*, exporting: bool = False) -> dict[str, list[str]]:
    """`examples` of the Jobs Param: the jobs file's names (`exporting`: of the jobs with an
    export), which the trigger form offers in a multi-select; nothing when the file is
    unusable (the form then takes free text)."""
    from dialsflow.config.jobs import load_jobs

    try:
        names = [name for name, job in load_jobs().items() if job.export or not exporting]
    except Exception:  # noqa: BLE001 - reported by the load_config task
        return {}
    return {"examples": names} if names else {}


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
    """The job of an asset `job_asset` made (None for any other asset, and for the alias
    OUTPUTS: a run its events trigger sees the alias among the triggering assets too)."""
    if asset_name == OUTPUTS.name or not asset_name.startswith(PREFIX):
        return None
    return asset_name.removeprefix(PREFIX)


def job_asset(name: str, uri: str) -> Asset:
    return Asset(name=PREFIX + name, uri=uri)
