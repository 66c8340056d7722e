"""The DAG's task logic that needs no services: windows, verdicts, resumable retries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from dialsflow.airflow.tasks import unit_label, window
from dialsflow.pipeline.completeness import CompletenessReport, RunCheck
from dialsflow.pipeline.ingest import runs_to_do
from dialsflow.pipeline.units import Unit
from dialsflow.pipeline.verdict import judge
from dialsflow.store.layout import UnitKey, run_file, safe_run_id
from dialsflow.store.manifest import Manifest, RunEntry

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


def check(run: int, dbs: range, dials: range, parquet: range) -> RunCheck:
    return RunCheck(KEY, run, frozenset(dbs), frozenset(parquet), frozenset(dials))


def report(*checks: RunCheck) -> CompletenessReport:
    return CompletenessReport((KEY,), checks, (), True)


def test_upstream_gaps_fail_only_beyond_tolerance():
    small_gap = check(1, range(1, 101), range(1, 96), range(1, 96))  # DIALS lacks 5 %
    assert judge(report(small_gap), [], 0.1) == []
    assert judge(report(small_gap), [], 0.02) == [
        f"{KEY.dataset} × {KEY.me} run 1: DIALS lacks 5% of the DBS lumisections "
        "(tolerance 2%)"]


def test_parquet_lacking_what_dials_has_always_fails_except_in_test_mode():
    ours = check(2, range(1, 51), range(1, 51), range(1, 49))
    assert judge(report(ours), [], 1.0) == [
        f"{KEY.dataset} × {KEY.me} run 2: parquet lacks 2 LS that DIALS has"]
    assert judge(report(ours), [], 1.0, test=True) == []


def test_failed_units_fail_the_job_even_without_a_report():
    assert judge(None, [KEY], 0.5, test=True) == [
        f"ingestion failed for {KEY.dataset} × {KEY.me} (see its mapped task log)"]


def entry(run: int, ingested_at: str) -> RunEntry:
    return RunEntry(KEY.workspace, KEY.dataset, 7, KEY.me, 3, 1, run, 1, [[1, 1]], 4,
                    "0" * 64, ingested_at, True)


def test_retries_resume_and_forced_retries_keep_tonights_work(tmp_path: Path):
    manifest = Manifest(tmp_path)
    for run, when in ((1, "2024-01-01T00:00:00Z"), (2, "2026-11-25T03:10:00Z")):
        path = run_file(tmp_path, KEY, run)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"abcd")
        manifest.record(entry(run, when))
    unit = Unit.from_json(UNIT)
    started = "2026-11-25T03:00:00Z"
    assert runs_to_do(manifest, unit, force=False, since=started) == [3]
    assert runs_to_do(manifest, unit, force=True, since=started) == [1, 3]


def test_labels_and_report_names():
    assert unit_label(UNIT) == f"j: {KEY.dataset} × charge_PXLayer_1"
    assert safe_run_id("manual__2026-11-25T02:39:50.126+00:00") == \
        "manual__2026-11-25T02_39_50.126_00_00"
