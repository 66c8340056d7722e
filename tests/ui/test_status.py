"""The page model from an output tree alone: statuses, verdicts, reasons, disk, links."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from dialsflow.airflow.ui import status
from dialsflow.pipeline.verdict import COMPLETE, WITH_UPSTREAM_GAPS
from dialsflow.store.reports import write_report

DS = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
L1, L2 = "Pixel/PXBarrel/occupancy_PXLayer_1", "Pixel/PXBarrel/occupancy_PXLayer_2"


def check(run: int, dbs: int, dials: int | None, parquet: int, ours: int | None,
          gap: int | None) -> dict[str, Any]:
    return {"run": run, "ok": not (ours or gap), "counts": {
        "dbs": dbs, "dials": dials, "parquet": parquet, "missing_in_parquet": dbs - parquet,
        "ours": ours, "upstream_gap": gap, "extra": 0}}


def report(run_id: str, **overrides: Any) -> dict[str, Any]:
    doc = {
        "job": "demo", "run_id": run_id, "window": ["a", "b"], "test": False,
        "verdict": WITH_UPSTREAM_GAPS, "failures": [], "tolerance": 0.25,
        "failed_units": [{"dataset": DS, "me": L2, "runs": [11]}],
        "ingested": [{"dataset": DS, "me": L1, "written": [10, 11, 12]}],
        "plan": {"runs": [{"run": 9, "dataset": DS, "status": "excluded",
                           "reason": "no stable beams"},
                          {"run": 13, "dataset": DS, "status": "waiting",
                           "reason": "not certified yet"},
                          {"run": 12, "dataset": DS, "status": "due", "reason": None}],
                 "stuck": [{"dataset": DS, "run": 12, "files": 1}]},
        "completeness": {"units": [{"dataset": DS, "me": L1, "runs": [
            check(10, 20, 20, 20, 0, 0), check(11, 30, 25, 25, 0, 5),
            check(12, 40, 38, 38, 0, 2)]}, {"dataset": DS, "me": L2, "runs": [
            check(10, 20, 20, 18, 2, 0)]}]},
        "conditions": {"not_written": []},
    }
    return {**doc, **overrides}


def test_cells_rows_and_reasons() -> None:
    links = []

    def link(run_id: str, job: str, dataset: str, me: str) -> str:
        links.append((run_id, job, dataset, me))
        return f"/log/{me}"

    m = status.night_matrix(report("n1"), link)
    assert [u["label"] for u in m["units"]] == ["occupancy_PXLayer_1", "occupancy_PXLayer_2"]
    assert m["units"][0]["dataset_label"] == "ZeroBias/Run2024C-PromptReco-v1"
    grid = {row["run"]: [c and c["status"] for c in row["cells"]] for row in m["rows"]}
    assert grid == {9: ["excluded", "excluded"], 10: ["complete", "ours_missing"],
                    11: ["upstream_gap", "failed"], 12: ["stuck", None],
                    13: ["waiting", "waiting"]}
    failed = m["rows"][2]["cells"][1]
    assert failed["log"] == f"/log/{L2}" and links == [("n1", "demo", DS, L2)]
    assert m["rows"][1]["cells"][0]["counts"]["parquet"] == 20
    assert [(r["run"], r["status"]) for r in m["reasons"]] == [
        (9, "excluded"), (13, "waiting"), (12, "stuck")]
    assert m["reasons"][0]["reason"] == "no stable beams"


def test_verdicts() -> None:
    ok = {"failed_units": []}
    assert status.verdict_class(report("a")) == "failed"
    assert status.verdict_class(report("a", **ok)) == "complete with upstream gaps"
    assert status.verdict_class(report("a", verdict=COMPLETE, **ok)) == "complete"
    assert status.verdict_class(report("a", failures=["parquet lacks"], **ok)) == "incomplete"
    assert status.verdict_class(report("a", test=True, **ok)) == "incomplete"
    assert status.verdict_class(report("a", conditions={"not_written": [3]}, **ok)) == "failed"


def test_page_reads_the_last_nights_newest_first_and_disk(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    for i, run_id in enumerate(["scheduled__2024-09-02", "manual__2024-09-01", "old"]):
        path = write_report(out, run_id, report(run_id))
        os.utime(path, (1000 - i, 1000 - i))
    (out / "data.parquet").write_bytes(b"x" * 10_000)
    page = status.page_model([("demo", out), ("none", tmp_path / "absent")], nights=2)
    demo, none = page["jobs"]
    assert [n["run_id"] for n in demo["nights"]] == ["scheduled__2024-09-02",
                                                     "manual__2024-09-01"]
    assert demo["disk_bytes"] >= 10_000 and none == {
        "job": "none", "output": str(tmp_path / "absent"), "disk_bytes": 0, "nights": []}
    assert demo["nights"][0]["verdict"] == "failed"
    assert orjson.loads(orjson.dumps(page)) == page  # what the app sends


def test_failures_name_units_by_their_short_names() -> None:
    """The page's failure lines name dataset and ME as the matrix does, nothing else is
    changed, so the cause stays on screen."""
    failures = [f"ingestion failed for {DS} × {L2} (see its mapped task log)",
                f"{DS} × {L1} run 11: DIALS lacks 17% of the DBS lumisections (tolerance 10%)",
                "run 12: no per-LS OMS conditions table (see the conditions task log)"]
    got = status.night_model(report("n1", failures=failures))["failures"]
    assert got == [
        "ingestion failed for ZeroBias/Run2024C-PromptReco-v1 × occupancy_PXLayer_2 "
        "(see its mapped task log)",
        "ZeroBias/Run2024C-PromptReco-v1 × occupancy_PXLayer_1 run 11: DIALS lacks 17% of "
        "the DBS lumisections (tolerance 10%)",
        failures[2]]
