"""An XCom read straight from Airflow's metadata database, for our code that runs beside it
(the page in the api-server, the run-note listener in the scheduler) rather than in a task,
where `ti.xcom_pull` would do."""

from __future__ import annotations

from typing import Any


def stored_xcom(session: Any, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    """The value a task (not a mapped one) pushed under `key` in that run; None when none."""
    from airflow.models.xcom import XComModel

    row = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids=task_id,
                                             key=key, map_indexes=-1, limit=1)).first()
    return XComModel.deserialize_value(row) if row is not None else None
