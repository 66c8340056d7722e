"""A job's verdict: upstream gaps within tolerance, our losses and failed units."""

from __future__ import annotations

from dialsflow.pipeline.completeness import CompletenessReport, RunCheck
from dialsflow.pipeline.verdict import WITH_UPSTREAM_GAPS, WITHIN_TOLERANCE, Verdict, judge
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


def test_gaps_dials_reports_itself_are_reported_not_failures():
    """A file DIALS failed for good or is stuck on (seen by discovery in its file index)
    explains the gap of that run only; our losses still fail."""
    copy_error = check(3, range(1, 51), range(1, 4), range(1, 4))  # DIALS lacks 94 %
    unexplained = check(4, range(1, 51), range(1, 40), range(1, 40))
    explained = {(KEY.dataset, 3)}
    assert judge(report(copy_error, unexplained), [], 0.25, explained=explained) == []
    assert judge(report(copy_error, unexplained), [], 0.2, explained=explained) == [
        f"{KEY.dataset} × {KEY.me} run 4: DIALS lacks 22% of the DBS lumisections "
        "(tolerance 20%)"]
    assert judge(report(copy_error), [], 0.25) != []
    verdict = Verdict([], report(copy_error), explained)
    assert verdict.text == WITH_UPSTREAM_GAPS
    assert Verdict([], report(unexplained)).text == WITHIN_TOLERANCE
    ours = check(5, range(1, 51), range(1, 4), range(1, 3))
    assert judge(report(ours), [], 0.25, explained={(KEY.dataset, 5)}) == [
        f"{KEY.dataset} × {KEY.me} run 5: parquet lacks 1 LS that DIALS has"]


def test_a_failed_unit_is_one_line_not_one_per_run_it_lacks():
    """The runs a failed unit did not write are its failure, said once; another unit's
    losses and the failed unit's upstream gaps are still named."""
    other = UnitKey(KEY.workspace, KEY.dataset, "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_2")
    lost = [check(run, range(1, 51), range(1, 51), range(0)) for run in (1, 2, 3)]
    gap = check(4, range(1, 51), range(1, 26), range(0))
    theirs = RunCheck(other, 1, frozenset(range(1, 51)), frozenset(range(1, 50)),
                      frozenset(range(1, 51)))
    got = judge(CompletenessReport((KEY, other), (*lost, gap, theirs), (), True), [KEY], 0.25)
    assert got == [
        f"ingestion failed for {KEY.dataset} × {KEY.me} (see its mapped task log)",
        f"{KEY.dataset} × {KEY.me} run 4: DIALS lacks 50% of the DBS lumisections "
        "(tolerance 25%)",
        f"{other.dataset} × {other.me} run 1: parquet lacks 1 LS that DIALS has"]
