"""Nightly DIALS → parquet ingestion of newly certified runs: wiring only.

load_config → discover → ingest (one mapped task per concrete dataset × ME, pool `dials_api`)
→ conditions (per-LS OMS conditions of the runs) and certification (per-LS
Golden/DCS flags once the maps landed) → completeness (always runs; fails the DAG run on our
failures, a failed conditions task included). The logic lives in
`dialsflow.airflow.tasks`; nothing here touches the network or reads more than the
jobs file (for the output assets).

Parse-time settings (environment, all optional): DIALSFLOW_SCHEDULE (cron, UTC),
DIALSFLOW_START_DATE, DIALSFLOW_END_DATE (no scheduled runs after it: for a world that ends,
such as the emulator's), DIALSFLOW_RETRIES, DIALSFLOW_RETRY_DELAY_S,
DIALSFLOW_TASK_TIMEOUT_MIN.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import (
    CronDataIntervalTimetable,
    Param,
    TriggerRule,
    dag,
    get_current_context,
    task,
)

from dialsflow.airflow.alerts import night_failure_alert
from dialsflow.airflow.assets import OUTPUTS, job_examples

POOL = "dials_api"
END_DATE = os.environ.get("DIALSFLOW_END_DATE")
RETRIES = int(os.environ.get("DIALSFLOW_RETRIES", "3"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("DIALSFLOW_RETRY_DELAY_S", "120")))


@dag(
    dag_id="dials_ingest",
    schedule=CronDataIntervalTimetable(os.environ.get("DIALSFLOW_SCHEDULE", "0 3 * * *"),
                                       timezone="UTC"),
    start_date=pendulum.parse(os.environ.get("DIALSFLOW_START_DATE", "2024-01-01"), tz="UTC"),
    end_date=pendulum.parse(END_DATE, tz="UTC") if END_DATE else None,
    catchup=False,
    max_active_runs=1,  # each night plans from the manifest the previous one left
    default_args={"retries": 0},
    on_failure_callback=night_failure_alert(),  # dialsflow_alert_* connections; none: silent
    tags=["dials", "dqm", "ingest"],
    doc_md=__doc__,
    params={
        # "null" in the types: the form does not mark the field required (empty = all);
        # examples: the form offers the jobs file's names; no enum and no pattern, whose
        # errors come back as a JSON-schema dump: load_config rejects a bad value in one
        # sentence instead
        "jobs": Param([], type=["null", "array"], items={"type": "string"},
                      title="Jobs", **job_examples(),
                      description="Job names from the jobs file; empty = every job."),
        "runs": Param(None, type=["null", "string"], title="Runs",
                      description="FIRST-LAST (e.g. 379400-379500) or a comma list (e.g. "
                                  "379433,379439): only these runs (still certified, wanted "
                                  "by OMS and ready in DIALS ones only)."),
        "force": Param(False, type="boolean", title="Force re-ingest",
                       description="Re-ingest the given runs even when the manifest says "
                                   "complete (needs Runs)."),
        "test": Param(False, type="boolean", title="Test mode",
                      description="First page per run only (recorded as incomplete)."),
    },
)
def dials_ingest() -> None:
    @task
    def load_config() -> dict:
        from dialsflow.airflow import tasks

        return tasks.load_config(get_current_context())

    # Reads only (DIALS, OMS, CAF, DBS; the manifest): a try that ran out of its HTTP retry
    # budget in a burst of transient faults is simply tried again.
    @task(retries=RETRIES, retry_delay=RETRY_DELAY)
    def discover(config: dict) -> list[dict]:
        """Returns the units to map over; the whole plan (for completeness) goes to XCom
        key "plan" (Airflow maps only over return values)."""
        from dialsflow.airflow import tasks

        plan = tasks.discover(config)
        get_current_context()["ti"].xcom_push(key="plan", value=plan)
        return plan["units"]

    @task(pool=POOL, retries=RETRIES,
          retry_delay=RETRY_DELAY, retry_exponential_backoff=2.0,
          max_retry_delay=timedelta(minutes=30),
          execution_timeout=timedelta(minutes=int(
              os.environ.get("DIALSFLOW_TASK_TIMEOUT_MIN", "180"))),
          # rendered from the mapped argument before the task runs, so even a try that
          # fails at once (or is killed) keeps its label
          map_index_template="{{ ti.task.op_kwargs['unit']['label'] }}")
    def ingest(unit: dict, config: dict) -> dict:
        from dialsflow.airflow import tasks

        return tasks.ingest(unit, config)

    # Idempotent like ingest, so retried like it (a lost worker kills them alike). After the
    # maps (whatever failed, not after a failed load_config/discover): its table is compared
    # with the maps' LS, and a task queued beside the ingest tasks could be lost with a
    # Celery worker the database outage left stuck (docs/deployment.md, reliability).
    @task(retries=RETRIES, retry_delay=RETRY_DELAY,
          trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def conditions(config: dict) -> dict:
        """Per-LS OMS conditions beside the maps; the plan is pulled as completeness pulls
        it."""
        from dialsflow.airflow import tasks

        plan = get_current_context()["ti"].xcom_pull(task_ids="discover", key="plan")
        return tasks.conditions(config, plan)

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=RETRIES, retry_delay=RETRY_DELAY)
    def certification() -> dict:
        """LS-level certification beside the maps, once tonight's maps landed (whatever
        failed)."""
        from dialsflow.airflow import tasks

        return tasks.certification(get_current_context()["ti"].xcom_pull(task_ids="load_config"))

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[OUTPUTS])
    def completeness(results: list[dict]) -> dict:
        """Runs whatever happened upstream; config and plan are pulled here (not passed as
        arguments) so a failed load_config/discover gives a clear message, not a render
        error."""
        from dialsflow.airflow import tasks

        context = get_current_context()
        ti = context["ti"]
        config = ti.xcom_pull(task_ids="load_config")
        plan = ti.xcom_pull(task_ids="discover", key="plan")
        return tasks.completeness(config, plan, list(results), context["outlet_events"],
                                  ti=ti)

    config = load_config()
    units = discover(config)
    results = ingest.partial(config=config).expand(unit=units)
    oms_conditions = conditions(config)
    [units, results] >> oms_conditions
    ls_certification = certification()
    results >> ls_certification
    [config, units, oms_conditions, ls_certification] >> completeness(results)


dials_ingest()
