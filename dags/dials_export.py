"""dialstools exports refreshed after each night: wiring only.

Scheduled on the output assets of the jobs with an `export` in the jobs file (any of them:
`dials_ingest`'s completeness task updates a job's asset when its night is done), so each
night's new runs reach the exported files the seed scripts' users read. One task, `export`;
the logic lives in `dialsflow.airflow.export_tasks`. With no job exporting, the DAG runs only
when triggered by hand. Nothing here touches the network or reads more than the jobs file.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import AssetAny, Param, dag, get_current_context, task

from dialsflow.airflow.assets import export_assets, job_examples

ASSETS = export_assets()


@dag(
    dag_id="dials_export",
    schedule=AssetAny(*ASSETS) if ASSETS else None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two refreshes of one export would only write it twice
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["dials", "dqm", "export"],
    doc_md=__doc__,
    params={
        # as dials_ingest's: not marked required (null allowed), the job names offered
        "jobs": Param([], type=["null", "array"], items={"type": "string"}, title="Jobs",
                      **job_examples(exporting=True),
                      description="Manual runs: job names whose exports to refresh; empty = "
                                  "every job with an export."),
    },
)
def dials_export() -> None:
    @task
    def export() -> dict:
        from dialsflow.airflow import export_tasks

        return export_tasks.refresh(get_current_context())

    export()


dials_export()
