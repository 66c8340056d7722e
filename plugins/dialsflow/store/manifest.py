"""The manifest: what has been written, per dataset × ME × run; the truth for "complete".

One small JSON document per run under OUTDIR/_manifest/<workspace>/<dataset>/<ME>/, written
atomically after its parquet file. Separate files need no lock, so concurrent writers
(CLI processes, mapped Airflow tasks, hosts sharing EOS/S3-like storage) cannot corrupt each
other; the last complete write of a run wins.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dialsflow.store import atomic
from dialsflow.store.layout import (
    RUN_FILE,
    UnitKey,
    manifest_dir,
    manifest_file,
    run_file,
    unit_dir,
)


@dataclass(frozen=True)
class RunEntry:
    workspace: str
    dataset: str
    dataset_id: int
    me: str
    me_id: int
    dim: int
    run: int
    rows: int
    ls_ranges: list[list[int]]
    bytes: int
    sha256: str
    ingested_at: str
    complete: bool  # False for --test (truncated) output
    source: dict[str, Any] = field(default_factory=dict)  # DIALS URL, workspace, filters
    certification: str | None = None  # the CAF file that certified the run, when known
    #: DIALS still had files of the run PENDING/STARTED past the job's threshold: the run was
    #: ingested with that gap (a forced re-ingestion fills it once DIALS is done)
    upstream_stuck: bool = False

    @property
    def key(self) -> UnitKey:
        return UnitKey(self.workspace, self.dataset, self.me)

    @property
    def ls_numbers(self) -> list[int]:
        return [n for first, last in self.ls_ranges for n in range(first, last + 1)]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Manifest:
    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir

    def _dir(self, key: UnitKey) -> Path:
        return manifest_dir(self.outdir, key)

    def _path(self, key: UnitKey, run: int) -> Path:
        return manifest_file(self.outdir, key, run)

    def record(self, entry: RunEntry) -> None:
        atomic.write_bytes(self._path(entry.key, entry.run),
                           orjson.dumps(asdict(entry), option=orjson.OPT_INDENT_2))

    def get(self, key: UnitKey, run: int) -> RunEntry | None:
        try:
            return RunEntry(**orjson.loads(self._path(key, run).read_bytes()))
        except FileNotFoundError:
            return None

    def is_complete(self, key: UnitKey, run: int) -> bool:
        """A complete entry whose parquet file is there with the recorded size."""
        entry = self.get(key, run)
        if entry is None or not entry.complete:
            return False
        try:
            return run_file(self.outdir, key, run).stat().st_size == entry.bytes
        except FileNotFoundError:
            return False

    def complete_runs(self, key: UnitKey) -> set[int]:
        """Every run `is_complete` holds for the unit, from one pass over its folders."""
        sizes = {}
        folder = unit_dir(self.outdir, key)
        if folder.is_dir():
            for item in os.scandir(folder):
                if m := RUN_FILE.fullmatch(item.name):
                    sizes[int(m[1])] = item.stat().st_size
        return {e.run for e in self.entries(key) if e.complete and sizes.get(e.run) == e.bytes}

    def entries(self, key: UnitKey) -> Iterator[RunEntry]:
        """The unit's entries in run order (not name order: run_12 comes after run_3)."""
        folder = self._dir(key)
        if not folder.is_dir():
            return
        found = [(int(m[1]), p) for p in folder.iterdir()
                 if p.suffix == ".json" and (m := RUN_FILE.fullmatch(p.stem + ".parquet"))]
        for _, p in sorted(found):
            yield RunEntry(**orjson.loads(p.read_bytes()))

    def sweep_temporaries(self, key: UnitKey) -> int:
        """Remove entries half-written by killed writers of this unit; returns how many."""
        return atomic.sweep_temporaries(self._dir(key))

    def forget(self, key: UnitKey, run: int) -> None:
        """Drop a run's entry first (so it no longer counts), before its file is replaced."""
        self._path(key, run).unlink(missing_ok=True)
