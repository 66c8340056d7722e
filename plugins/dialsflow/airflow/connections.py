"""Connections from Airflow's store (UI, secrets backend or `AIRFLOW_CONN_*`), for tasks.

Only callable where Airflow runs; the CLI reads the same connections from the environment
(`dialsflow.config.connections.from_env`) and never imports Airflow.
"""

from __future__ import annotations

from dialsflow.config.connections import ServiceConnection, from_fields
from dialsflow.errors import ConnectionConfigError


def from_airflow(conn_id: str) -> ServiceConnection:
    """The connection from Airflow's store (UI, secrets backend or `AIRFLOW_CONN_*`).

    Only callable where Airflow runs (tasks); the import stays inside so the CLI and DAG
    parsing never pay for it.
    """
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        raise ConnectionConfigError(
            f"connection {conn_id!r} is not defined: add it in Admin → Connections or as "
            f"AIRFLOW_CONN_{conn_id.upper()} (see README, Connections)") from None
    data = {"host": conn.host, "port": conn.port, "schema": conn.schema, "login": conn.login,
            "password": conn.password, "extra": conn.extra_dejson}
    return from_fields(conn_id, data)
