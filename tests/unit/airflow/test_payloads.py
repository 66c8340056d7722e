"""XCom payloads: JSON round trips, and the JSON keys other tasks and reports rely on."""

from __future__ import annotations

from pathlib import Path

import orjson

from dialsflow.airflow.payloads import IngestResult, NightPlan, RunConfig, UnitTask
from dialsflow.config.runs import RunSelection
from dialsflow.pipeline.units import Unit
from dialsflow.store.layout import UnitKey

KEY = UnitKey("tracker", "/ZeroBias/Run2024C-PromptReco-v1/DQMIO",
              "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1")
TASK = UnitTask("zb", Path("/srv/out/zb"), Unit(KEY, 7, 3, 1, (380001, 380003)),
                {"Cert_Collisions2024_379433_380013_Golden.json": (380001,),
                 "Cert_Collisions2024_379433_380100_Golden.json": (380003,)}, (380003,))


def through_json(data: dict) -> dict:
    """What XCom does to a payload: serialise and parse it again."""
    return orjson.loads(orjson.dumps(data))


def test_run_config_round_trip_and_derived_views():
    config = RunConfig(("zb", "ecal"), ("2024-04-24T03:00:00Z", "2024-04-25T03:00:00Z"),
                       "380001,380003", True, False, "manual__x", "2024-04-25T03:00:05Z")
    data = through_json(config.to_json())
    assert set(data) == {"jobs", "window", "runs", "force", "test", "run_id", "started"}
    assert RunConfig.from_json(data) == config
    assert config.selection == RunSelection.of([380001, 380003])
    start, end = config.interval
    assert (end - start).days == 1 and start.tzinfo is not None


def test_unit_task_keeps_the_mapped_kwargs_flat_and_labels_the_grid():
    data = through_json(TASK.to_json())
    assert data == {"workspace": "tracker", "dataset": KEY.dataset, "dataset_id": 7,
                    "me": KEY.me, "me_id": 3, "dim": 1, "runs": [380001, 380003],
                    "job": "zb", "output": "/srv/out/zb",
                    "certified_by": {"Cert_Collisions2024_379433_380013_Golden.json": [380001],
                                     "Cert_Collisions2024_379433_380100_Golden.json": [380003]},
                    "stuck": [380003], "label": TASK.label}
    assert UnitTask.from_json(data) == TASK
    # the dataset without its data tier: the DAG's map_index_template reads "label"
    assert TASK.label == f"zb: {'/'.join(KEY.dataset.split('/')[1:3])} × charge_PXLayer_1"
    assert TASK.certification_of() == {
        380001: "Cert_Collisions2024_379433_380013_Golden.json",
        380003: "Cert_Collisions2024_379433_380100_Golden.json"}


def test_night_plan_round_trip_with_job_notes():
    notes = {"job": "zb", "counts": {"due": 2}, "runs": [], "stuck": []}
    night = NightPlan([TASK], [notes])
    back = NightPlan.from_json(through_json(night.to_json()))
    assert back == night
    assert back.job_notes("zb") == notes and back.job_notes("other") == {}


def test_ingest_result_round_trip():
    result = IngestResult("zb", "tracker", KEY.dataset, KEY.me, [380001], 120, 4096)
    assert IngestResult.from_json(through_json(result.to_json())) == result
