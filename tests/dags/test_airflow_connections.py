"""Connections read from Airflow's store mean the same as from the CLI's environment."""

from __future__ import annotations

import pytest

from dialsflow.airflow.connections import from_airflow
from dialsflow.config.connections import (
    ConnectionConfigError,
    DialsSettings,
    from_env,
)

DIALS = ('{"conn_type": "http", "host": "http://127.0.0.1:9/", "login": "app", '
         '"password": "s3cret-value", "extra": {"workspace": "ecal", "auth": '
         '"client_credentials"}}')


def test_same_fields_as_the_cli(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DIALS_DEFAULT", DIALS)
    via_airflow = from_airflow("dials_default")
    assert via_airflow == from_env("dials_default")
    settings = DialsSettings.from_connection(via_airflow)
    assert (settings.base_url, settings.workspace, settings.client_secret) == (
        "http://127.0.0.1:9/", "ecal", "s3cret-value")
    assert "s3cret-value" not in repr(via_airflow)


def test_missing_connection_says_how_to_add_it(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_OMS_DEFAULT", raising=False)
    with pytest.raises(ConnectionConfigError, match="AIRFLOW_CONN_OMS_DEFAULT"):
        from_airflow("oms_default")
