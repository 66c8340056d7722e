"""Nightly completeness reports: one JSON document per job and DAG run, beside the data.

They live under OUTDIR/_reports/ (see `layout.report_file`), written atomically, so an
operator (or a UI reading the output tree) sees whole reports only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from dialsflow.store import atomic
from dialsflow.store.layout import report_file


def write_report(outdir: Path, run_id: str, document: dict[str, Any]) -> Path:
    path = report_file(outdir, run_id)
    atomic.write_bytes(path, orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return path


def read_report(outdir: Path, run_id: str) -> dict[str, Any]:
    return orjson.loads(report_file(outdir, run_id).read_bytes())
