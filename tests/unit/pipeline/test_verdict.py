"""A job's verdict: upstream gaps within tolerance, our losses and failed units."""

from __future__ import annotations

from dialsflow.pipeline.completeness import CompletenessReport, RunCheck
from dialsflow.pipeline.verdict import judge
from dialsflow.store.layout import UnitKey

KEY = UnitKey("tracker", "/ZeroBias/Run2024C-PromptReco-v1/DQMIO",
              "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1")
UNIT = {"workspace": KEY.workspace, "dataset": KEY.dataset, "me": KEY.me, "dataset_id": 7,
        "me_id": 3, "dim": 1, "runs": [1, 2, 3], "job": "j", "output": "/x"}


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
