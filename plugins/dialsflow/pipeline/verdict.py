"""A job's verdict for one night, and the report document that explains it.

The completeness sets (pipeline/completeness.py) say *what* is missing and whose problem
it is; this module decides what that means for the job: our failures (parquet lacking
what DIALS has, units whose ingestion failed) always fail it; upstream gaps (DBS has LS
that DIALS lacks) fail it only beyond the job's tolerance, unless DIALS itself says why
(a file it failed for good, or one stuck upstream: discovery saw them in DIALS' file index,
so they are reported, not failures of the night); in test mode truncated output is
expected, so only failed units count. Runs whose per-LS OMS conditions could not be written
fail it too; LS with a map but no OMS row are OMS' gap, reported in the "conditions" section.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from dialsflow.config.conditions import ConditionsSpec
from dialsflow.errors import first_causes
from dialsflow.pipeline.completeness import CompletenessReport
from dialsflow.pipeline.conditions import ConditionsCheck
from dialsflow.store.layout import UnitKey

COMPLETE = "complete"
WITHIN_TOLERANCE = "complete within tolerance (upstream gaps reported)"
WITH_UPSTREAM_GAPS = ("complete with upstream gaps DIALS reports (files it failed or is stuck "
                      "on; see the report)")


def judge(report: CompletenessReport | None, failed_units: Iterable[UnitKey],
          tolerance: float, *, test: bool = False,
          explained: Collection[tuple[str, int]] = (),
          unwritten_conditions: Iterable[int] = ()) -> list[str]:
    """Why the job fails (empty: it does not). `explained`: (dataset, run) whose upstream
    gap DIALS' file index accounts for; `unwritten_conditions`: runs that should have a
    conditions table and have none."""
    failed = list(dict.fromkeys(failed_units))
    failures = [f"ingestion failed for {key.dataset} × {key.me} (see its mapped task log)"
                for key in failed]
    failures += [f"run {run}: no per-LS OMS conditions table (see the conditions task log)"
                 for run in unwritten_conditions]
    if report is None or test:
        return failures
    for c in report.checks:
        where = f"{c.key.dataset} × {c.key.me} run {c.run}"
        if c.ours and c.key not in failed:  # a failed unit's losses: its one line says it
            failures.append(f"{where}: parquet lacks {len(c.ours)} LS that DIALS has")
        gap = c.dials_missing_fraction or 0.0
        if gap > tolerance and (c.key.dataset, c.run) not in explained:
            failures.append(f"{where}: DIALS lacks {gap:.0%} of the DBS lumisections "
                            f"(tolerance {tolerance:.0%})")
    return failures


@dataclass(frozen=True)
class Verdict:
    """A job's night in one line, with the failures behind it."""

    failures: list[str]
    report: CompletenessReport | None
    explained: Collection[tuple[str, int]] = ()

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def text(self) -> str:
        if self.failures:
            return "FAILED: " + "; ".join(self.failures)
        if self.report is None or self.report.complete:
            return COMPLETE
        reported = any(c.upstream_gap and (c.key.dataset, c.run) in self.explained
                       for c in self.report.checks)
        return WITH_UPSTREAM_GAPS if reported else WITHIN_TOLERANCE

    @property
    def headline(self) -> str:
        """The verdict without its failures: what the completeness table's summary says."""
        return "FAILED" if self.failures else self.text

    def first_failures(self, n: int = 3) -> str:
        return first_causes(self.failures, n, rest="see the report")


def conditions_section(spec: ConditionsSpec, checks: Iterable[ConditionsCheck],
                       unwritten: Iterable[int]) -> dict[str, Any]:
    """The report's "conditions": per run due tonight with something to say, the LS that
    have a map but no OMS row; runs without a table (tonight's or earlier ones)."""
    checks = list(checks)
    return {"enabled": spec.enabled, "spec": spec.to_json() if spec.enabled else None,
            "runs_checked": len(checks), "not_written": list(unwritten),
            "map_ls_without_oms_row": sum(len(c.without_oms_row) for c in checks),
            "runs": [c.to_json() for c in checks if c.without_oms_row or not c.written]}


def report_document(*, job: str, tolerance: float, night: dict[str, Any], verdict: Verdict,
                    failed_units: Iterable[tuple[UnitKey, tuple[int, ...]]],
                    ingested: list[dict[str, Any]],
                    notes: dict[str, Any],
                    conditions: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report of a job's night: the run's settings (`night`: run_id, window, runs,
    force, test), the verdict, what was ingested, what failed, discovery's notes
    (certification in force, counts per status, every run not complete with its reason,
    runs stuck upstream, runs deferred by the budget), the completeness sets and the
    per-LS conditions section (`conditions_section`)."""
    return {
        "job": job, **night,
        "verdict": verdict.text, "failures": verdict.failures, "tolerance": tolerance,
        "failed_units": [{"dataset": key.dataset, "me": key.me, "runs": list(runs)}
                         for key, runs in failed_units],
        "ingested": ingested,
        "certification": notes.get("certification"),
        "plan": {"counts": notes.get("counts", {}), "runs": notes.get("runs", []),
                 "stuck": notes.get("stuck", []),
                 "failed_upstream": notes.get("failed_upstream", []),
                 "deferred": notes.get("deferred", 0)},
        "completeness": verdict.report.to_json() if verdict.report is not None else None,
        "conditions": conditions,
    }
