"""Reports land under OUTDIR/_reports with a portable name, whole or not at all."""

from __future__ import annotations

from pathlib import Path

from dialsflow.store.layout import REPORTS_DIR
from dialsflow.store.reports import read_report, write_report


def test_a_report_round_trips_under_a_portable_name(tmp_path: Path):
    run_id = "scheduled__2024-04-25T03:00:00+00:00"
    path = write_report(tmp_path, run_id, {"job": "zb", "verdict": "complete"})
    assert path.parent == tmp_path / REPORTS_DIR
    assert ":" not in path.name and "+" not in path.name and path.suffix == ".json"
    assert read_report(tmp_path, run_id) == {"job": "zb", "verdict": "complete"}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
