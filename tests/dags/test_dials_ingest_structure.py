"""The nightly DAG parses fast and offline, and is wired as operators expect."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from airflow.sdk import AssetAlias, CronDataIntervalTimetable, TriggerRule
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
    assert dag.get_task("ingest").downstream_task_ids == {"conditions", "certification",
                                                          "completeness"}
    # completeness runs whatever happened to conditions
    assert dag.get_task("conditions").downstream_task_ids == {"completeness"}
    # after the maps, whatever failed among them, but not after a failed load_config/discover
    assert dag.get_task("conditions").trigger_rule == TriggerRule.ALL_DONE_MIN_ONE_SUCCESS
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
    # rendered from the mapped argument before the task body runs (see test_failures_and_
    # operations for a failed one)
    assert ingest.map_index_template == "{{ ti.task.op_kwargs['unit']['label'] }}"


def test_completeness_always_runs_and_is_the_only_leaf(dag):
    completeness = dag.get_task("completeness")
    assert completeness.trigger_rule == TriggerRule.ALL_DONE
    # an alias: the task names the job assets to update at run time (only those written)
    assert completeness.outlets == [AssetAlias(name="dialsflow/written")]


def test_assets_get_events_only_for_jobs_that_wrote_data():
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from dialsflow.airflow.assets import OUTPUTS, job_asset
    from dialsflow.airflow.payloads import IngestResult
    from dialsflow.airflow.tasks import _emit_written

    jobs = list(load_jobs().values())
    events = OutletEventAccessors()
    ingested = [IngestResult(jobs[0].name, "tracker", "/A/B/DQMIO", "me", [], 0, 0),
                IngestResult(jobs[1].name, "ecal", "/A/B/DQMIO", "me", [379433], 3, 100)]
    _emit_written(events, jobs, ingested)
    added = events[OUTPUTS].asset_alias_events
    assert [(e.dest_asset_key.name, e.dest_asset_key.uri, e.extra) for e in added] == [
        (job_asset(jobs[1].name, jobs[1].output_uri).name, jobs[1].output_uri,
         {"runs_written": 1})]


def test_trigger_form_lists_jobs_and_takes_a_bad_runs_in_one_sentence(dag):
    from dialsflow.airflow import tasks
    from dialsflow.airflow.failures import TaskFailed

    schema = dag.params.get_param("jobs").schema
    assert schema["examples"] == list(load_jobs())
    # "null" among the types: the UI's form does not mark the field required
    assert "null" in schema["type"] and "null" in dag.params.get_param("runs").schema["type"]
    # no pattern (its error is a JSON-schema dump): the Param accepts, load_config refuses
    assert "pattern" not in dag.params.get_param("runs").schema
    dag.params.validate()
    with pytest.raises(TaskFailed) as exc:
        tasks.load_config({"params": {"jobs": [], "runs": "379433-"}})
    assert str(exc.value) == ("InputError: --runs '379433-': give FIRST-LAST (e.g. "
                              "380000-380100) or a comma list of run numbers (e.g. "
                              "380001,380007)")


def test_schedule_has_real_intervals(dag):
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert set(dag.params) == {"jobs", "runs", "force", "test"}
