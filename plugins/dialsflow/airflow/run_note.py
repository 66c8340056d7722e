"""The night's verdict as the DAG run's note, so Airflow's grid and run pages show it.

A task cannot write its run's note: the Task SDK has no call for it and the execution API
no route. Airflow calls DAG-run listeners where the run's final state is set (the
scheduler; `airflow dags test`), with the run in the session that sets it, so a listener
the plugin registers (plugins/dialsflow_ui_plugin.py) writes the note there. It reads the
per-job verdicts the completeness task pushed (XCom key "verdicts", pushed even when the
task fails on them); without them it names the tasks that failed. An operator's own note
(one with a user) is never replaced; ours is rewritten when a cleared run ends again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.listeners import hookimpl

from dialsflow.airflow.stored_xcom import stored_xcom
from dialsflow.airflow.ui.status import short_failure

DAG_ID = "dials_ingest"
TASK_ID = "completeness"
VERDICTS_KEY = "verdicts"
#: Airflow's dag_run_note.content is a String(1000).
LIMIT = 1000
#: Failures quoted per job; the report and the page have the rest.
FIRST = 2


def job_verdict(kind: str, failures: Sequence[str]) -> dict[str, Any]:
    """What the note keeps of a job's verdict: the page's verdict name, its first failures
    in short names, how many more."""
    return {"verdict": kind, "failures": [short_failure(f) for f in failures[:FIRST]],
            "more": max(0, len(failures) - FIRST)}


def note_text(verdicts: Mapping[str, Mapping[str, Any]] | None,
              failed_tasks: Sequence[str]) -> str:
    """The note (Markdown): a line per job, verdict first; without verdicts, the tasks that
    failed. At most LIMIT characters."""
    if not verdicts:
        if failed_tasks:
            text = (f"**no verdict**: {', '.join(sorted(set(failed_tasks)))} failed "
                    "(see its log)")
        else:
            text = "**no verdict**: the completeness task did not report"
        return text[:LIMIT]
    lines = []
    for job, v in verdicts.items():
        line = f"**{job}**: {v.get('verdict', '?')}"
        failures = list(v.get("failures") or [])
        if failures:
            line += " — " + "; ".join(failures)
        if v.get("more"):
            line += f" (+{v['more']} more on the DIALS ingestion page)"
        lines.append(line)
    text = "\n\n".join(lines)
    return text if len(text) <= LIMIT else text[:LIMIT - 1] + "…"


def write_note(dag_run: Any) -> None:
    """Set `dag_run`'s note from its completeness verdicts: in the session holding it (the
    scheduler's, which has the run's row locked), else in a session of our own (`airflow
    dags test` hands over a detached run)."""
    from airflow.utils.session import create_session
    from sqlalchemy.orm import object_session

    if dag_run.dag_id != DAG_ID:
        return
    session = object_session(dag_run)
    if session is not None:
        _write(dag_run, session)
        return
    from airflow.models.dagrun import DagRun

    with create_session() as own:
        attached = own.get(DagRun, dag_run.id)
        if attached is not None:
            _write(attached, own)


def _write(dag_run: Any, session: Any) -> None:
    from airflow.utils.state import TaskInstanceState

    existing = dag_run.dag_run_note
    if existing is not None and existing.user_id:
        return
    verdicts = stored_xcom(session, DAG_ID, dag_run.run_id, TASK_ID, VERDICTS_KEY)
    failed = [ti.task_id for ti in dag_run.get_task_instances(
        state=[TaskInstanceState.FAILED], session=session)]
    dag_run.note = note_text(verdicts if isinstance(verdicts, dict) else None, failed)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    write_note(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    write_note(dag_run)
