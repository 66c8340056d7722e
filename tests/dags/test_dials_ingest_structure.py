"""The nightly DAG parses fast and offline, and is wired as operators expect."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, TriggerRule
from airflow.sdk.definitions.mappedoperator import MappedOperator

from dialsflow.config.jobs import load_jobs

from .conftest import DAGS

# Parse the DAG file the way the dag-processor does (Airflow already imported), with every
# socket connection refused, and report how long the file itself took.
PARSE_PROBE = r"""
import socket, sys, time
import airflow.sdk, pendulum  # the dag-processor has these loaded already
def refuse(*a, **k):
    raise AssertionError(f"network access while parsing: {a[1:]}")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
t_bag = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
t1 = time.perf_counter()
assert not bag.import_errors, bag.import_errors
assert "dials_ingest" in bag.dags
print(t1 - t_bag)
"""


def test_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"dials_ingest", "dials_export"}


def test_parse_is_fast_and_offline():
    out = subprocess.run([sys.executable, "-c", PARSE_PROBE, str(DAGS)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seconds = float(out.stdout.strip().splitlines()[-1])
    print(f"dials_ingest parse: {seconds:.3f} s")
    assert seconds < 0.5


def test_shape(dag):
    assert set(dag.task_dict) == {"load_config", "discover", "ingest", "conditions",
                                  "certification", "completeness"}
    assert dag.get_task("load_config").downstream_task_ids == {"discover", "ingest",
                                                               "conditions", "completeness"}
    assert dag.get_task("discover").downstream_task_ids == {"ingest", "conditions",
                                                            "completeness"}
    assert dag.get_task("ingest").downstream_task_ids == {"certification", "completeness"}
    # beside ingest, not after it; completeness runs whatever happened to it
    assert dag.get_task("conditions").downstream_task_ids == {"completeness"}
    # the per-LS table covers tonight's maps, also when some units failed
    certification = dag.get_task("certification")
    assert certification.downstream_task_ids == {"completeness"}
    assert certification.trigger_rule == TriggerRule.ALL_DONE
    # idempotent, so retried: a lost worker kills them as it kills ingest tasks
    assert dag.get_task("conditions").retries >= 3 and certification.retries >= 3
    assert dag.leaves == [dag.get_task("completeness")]


def test_ingest_is_mapped_pooled_and_retried(dag):
    ingest = dag.get_task("ingest")
    assert isinstance(ingest, MappedOperator)
    kwargs = ingest.partial_kwargs
    assert kwargs["pool"] == "dials_api"
    assert kwargs["retries"] >= 3
    assert kwargs["retry_exponential_backoff"] == 2.0
    assert kwargs["execution_timeout"] >= timedelta(minutes=30)
    assert ingest.map_index_template == "{{ unit_label }}"


def test_completeness_always_runs_and_is_the_only_leaf(dag):
    completeness = dag.get_task("completeness")
    assert completeness.trigger_rule == TriggerRule.ALL_DONE
    jobs = load_jobs()
    assert {(a.name, a.uri) for a in completeness.outlets} == {
        (f"dialsflow/{name}", job.output.as_uri()) for name, job in jobs.items()}


def test_schedule_has_real_intervals(dag):
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert set(dag.params) == {"jobs", "runs", "force", "test"}
