"""Airflow for the DAG tests: its own AIRFLOW_HOME, set before anything imports airflow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="dialsflow-airflow-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# dialsflow has no default jobs file or output root: the DAG tests parse the demo's
os.environ["DIALSFLOW_JOBS_FILE"] = str(ROOT / "include" / "jsons" / "jobs.json")
os.environ["DIALSFLOW_OUTPUT_ROOT"] = tempfile.mkdtemp(prefix="dialsflow-output-")


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="session")
def dag(dagbag):
    return dagbag.dags["dials_ingest"]
