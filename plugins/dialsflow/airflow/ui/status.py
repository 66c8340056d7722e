"""The ingestion page's model, built from the output tree alone (reports and disk).

Each job's nightly reports (OUTDIR/_reports/*.json, pipeline/verdict.py `report_document`)
already hold the verdict, the completeness sets, the failed units and discovery's reasons,
so the page needs no Airflow database and works with any executor. The one thing a report
cannot know, where a failed unit's task log is, comes in as a `LogLink` callback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from dialsflow.pipeline.units import short_dataset, short_me
from dialsflow.pipeline.verdict import COMPLETE
from dialsflow.store.layout import REPORTS_DIR

#: Cell statuses, best first: the page's legend and colours follow this order.
STATUSES = ("complete", "upstream_gap", "ours_missing", "waiting", "stuck", "excluded",
            "failed")
#: Night verdicts, as the page names them.
VERDICTS = ("complete", "complete with upstream gaps", "incomplete", "failed")

#: (DAG run id, job, dataset, ME) → URL of the unit's mapped task log, or None.
LogLink = Callable[[str, str, str, str], "str | None"]


def no_links(run_id: str, job: str, dataset: str, me: str) -> None:
    """A `LogLink` for a tree read without Airflow."""
    return None


def verdict_class(report: Mapping[str, Any]) -> str:
    """One of VERDICTS: our failures (units that failed, conditions not written) fail the
    night; other failures, test mode or a missing completeness check leave it incomplete."""
    if report.get("failed_units") or (report.get("conditions") or {}).get("not_written"):
        return "failed"
    if report.get("failures") or report.get("test") or report.get("completeness") is None:
        return "incomplete"
    return "complete" if report.get("verdict") == COMPLETE else "complete with upstream gaps"


def _check_status(check: Mapping[str, Any], stuck: bool) -> str:
    counts = check.get("counts") or {}
    if counts.get("ours") or (counts.get("dials") is None and counts.get("missing_in_parquet")):
        return "ours_missing"
    if stuck:
        return "stuck"
    if counts.get("upstream_gap") or counts.get("missing_in_parquet"):
        return "upstream_gap"
    return "complete"


def night_matrix(report: Mapping[str, Any], log_link: LogLink = no_links) -> dict[str, Any]:
    """Runs × units (dataset × ME) of one report: every cell's status, LS counts and, for a
    failed cell, the link to its task log."""
    run_id, job = str(report.get("run_id", "")), str(report.get("job", ""))
    plan = report.get("plan") or {}
    stuck = {(s["dataset"], int(s["run"])) for s in plan.get("stuck", [])}
    units: dict[tuple[str, str], dict[str, Any]] = {}
    cells: dict[tuple[int, tuple[str, str]], dict[str, Any]] = {}

    def unit(dataset: str, me: str) -> tuple[str, str]:
        key = (dataset, me)
        units.setdefault(key, {"dataset": dataset, "me": me, "label": short_me(me),
                               "dataset_label": short_dataset(dataset)})
        return key

    for u in (report.get("completeness") or {}).get("units", []):
        key = unit(u["dataset"], u["me"])
        for check in u.get("runs", []):
            run = int(check["run"])
            cells[(run, key)] = {"status": _check_status(check, (key[0], run) in stuck),
                                 "counts": check.get("counts") or {}}
    for item in report.get("ingested", []):
        unit(item["dataset"], item["me"])
    for failed in report.get("failed_units", []):
        key = unit(failed["dataset"], failed["me"])
        link = log_link(run_id, job, *key)
        for run in failed.get("runs", []):
            cells[(int(run), key)] = {"status": "failed", "counts": {}, "log": link}
    reasons = []
    for entry in plan.get("runs", []):
        run, status = int(entry["run"]), entry["status"]
        if status in ("waiting", "excluded") or (entry["dataset"], run) in stuck:
            reasons.append({"run": run, "dataset": entry["dataset"],
                            "status": "stuck" if status not in ("waiting", "excluded")
                            else status, "reason": entry.get("reason") or ""})
        if status not in ("waiting", "excluded"):
            continue
        for key in units:
            if key[0] == entry["dataset"]:
                cells.setdefault((run, key), {"status": status, "counts": {},
                                              "reason": entry.get("reason") or ""})
    keys = sorted(units)
    runs = sorted({run for run, _ in cells})
    return {
        "units": [units[k] for k in keys],
        "rows": [{"run": run, "cells": [cells.get((run, k)) for k in keys]} for run in runs],
        "reasons": reasons,
    }


#: "<dataset> × <ME path>" as report lines name a unit (pipeline/verdict.py).
UNIT_IN_TEXT = re.compile(r"(/[^/\s]+/[^/\s]+/[^/\s]+) × (\S+)")


def short_failure(text: str) -> str:
    """A report's failure line with each unit's dataset and ME in the matrix's short names:
    the full paths repeated on every line hid the cause past the right edge."""
    return UNIT_IN_TEXT.sub(lambda m: f"{short_dataset(m[1])} × {short_me(m[2])}", text)


def night_model(report: Mapping[str, Any], log_link: LogLink = no_links) -> dict[str, Any]:
    """One night of one job: its verdict, first failures and matrix."""
    matrix = night_matrix(report, log_link)
    return {"run_id": report.get("run_id"), "window": report.get("window"),
            "verdict": verdict_class(report), "verdict_text": report.get("verdict", ""),
            "failures": [short_failure(f) for f in report.get("failures", [])],
            "test": bool(report.get("test")), "matrix": matrix}


def reports(outdir: Path, nights: int) -> list[dict[str, Any]]:
    """The job's last `nights` reports, newest first (by file time: run ids of manual and
    scheduled runs do not sort together)."""
    folder = Path(outdir) / REPORTS_DIR
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [orjson.loads(p.read_bytes()) for p in files[:nights]]


def disk_usage(path: Path) -> int:
    """Bytes allocated under `path` (what `du` counts), 0 when it does not exist."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:  # a temp file renamed away while walking
                continue
    return total


def page_model(jobs: Iterable[tuple[str, Path]], log_link: LogLink = no_links, *,
               nights: int = 7) -> dict[str, Any]:
    """Every job (name, output folder): disk used and its last nights, newest first."""
    out = []
    for name, outdir in jobs:
        out.append({"job": name, "output": str(outdir), "disk_bytes": disk_usage(outdir),
                    "nights": [night_model(r, log_link) for r in reports(outdir, nights)]})
    return {"statuses": list(STATUSES), "verdicts": list(VERDICTS), "jobs": out}
