"""Task adapters that need no services: the data interval and mapped-task labels."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from dialsflow.airflow.tasks import unit_label, window
from dialsflow.store.layout import UnitKey, safe_run_id

KEY = UnitKey("tracker", "/ZeroBias/Run2024C-PromptReco-v1/DQMIO",
              "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1")
UNIT = {"workspace": KEY.workspace, "dataset": KEY.dataset, "me": KEY.me, "dataset_id": 7,
        "me_id": 3, "dim": 1, "runs": [1, 2, 3], "job": "j", "output": "/x"}


def test_window_is_the_data_interval():
    start, end = datetime(2024, 4, 24, 3, tzinfo=UTC), datetime(2024, 4, 25, 3, tzinfo=UTC)
    assert window({"data_interval_start": start, "data_interval_end": end}) == (start, end)


def test_manual_run_without_logical_date_takes_the_day_before_run_after():
    run_after = datetime(2024, 4, 25, 10, 30, tzinfo=UTC)
    context = {"data_interval_start": None, "data_interval_end": None,
               "dag_run": SimpleNamespace(run_after=run_after)}
    assert window(context) == (datetime(2024, 4, 24, 10, 30, tzinfo=UTC), run_after)


def test_labels_and_report_names():
    assert unit_label(UNIT) == f"j: {KEY.dataset.strip('/').rsplit('/', 1)[0]} × " \
        "charge_PXLayer_1"
    assert safe_run_id("manual__2026-11-25T02:39:50.126+00:00") == \
        "manual__2026-11-25T02_39_50.126_00_00"
