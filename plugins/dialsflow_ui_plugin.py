"""Registers the "DIALS ingestion" page and the listener writing each night's verdict into
its DAG run's note: Airflow's plugins manager imports every module at the top of the
plugins folder (plugins/.airflowignore hides the dialsflow package itself)."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from dialsflow.airflow import run_note
from dialsflow.airflow.ui.app import URL_PREFIX, create_app


class DialsIngestionPlugin(AirflowPlugin):
    name = "dials_ingestion"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "DIALS ingestion"}]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {"name": "DIALS ingestion", "href": f"{URL_PREFIX}/", "destination": "nav",
         "url_route": "dials-ingestion"}]
    listeners: ClassVar[list[Any]] = [run_note]
