"""Resumable retries: what a mapped task still has to fetch."""

from __future__ import annotations

from pathlib import Path

from dialsflow.pipeline.ingest import runs_to_do
from dialsflow.pipeline.units import Unit
from dialsflow.store.layout import UnitKey, run_file
from dialsflow.store.manifest import Manifest, RunEntry

KEY = UnitKey("tracker", "/ZeroBias/Run2024C-PromptReco-v1/DQMIO",
              "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1")
UNIT = {"workspace": KEY.workspace, "dataset": KEY.dataset, "me": KEY.me, "dataset_id": 7,
        "me_id": 3, "dim": 1, "runs": [1, 2, 3], "job": "j", "output": "/x"}


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
