"""Ingest units: stream each run's pages into one parquet file, then record it in the manifest.

Both entry points end here: `fetch` (the CLI's one-off pull) and the nightly DAG's
mapped tasks (`ingest_units` on one unit, after `runs_to_do` under the unit's lock).

Per run: pages are parsed with orjson, turned into Arrow batches (schema v2,
`store/parquet.py`) and written in (run, ls) order as row groups of a temporary file beside
the target; the file is fsynced and renamed, and only then does the manifest get its entry.
Memory holds about one parsed page and one page in flight per worker, whatever the number of
runs or lumisections. Runs of all units share one bounded thread pool (DIALS is shared by
all of CMS: bound it further with Airflow pools).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dialsflow.config.connections import DEFAULT_WORKSPACE, DialsSettings
from dialsflow.config.runs import RunSelection
from dialsflow.errors import DialsflowError, ServiceError
from dialsflow.lumis import to_ranges
from dialsflow.pipeline.units import Unit, resolve_units
from dialsflow.services.dials import DialsClient, PageLimit, rows_for_bytes
from dialsflow.store import atomic
from dialsflow.store.layout import UnitKey, ensure_writable, run_file, unit_dir
from dialsflow.store.manifest import Manifest, RunEntry, file_sha256
from dialsflow.store.parquet import (
    FIELDS,
    SCHEMA,
    first_last,
    footer_metadata,
    sort_batches,
    to_batch,
    writer_options,
)
from dialsflow.times import now_iso

log = logging.getLogger("dialsflow")

# Pages stay near 2 MB of JSON (six 360×170 maps; parsed, a page costs several times its
# size in Python objects, and one more body is in flight per worker with prefetch); row
# groups are assembled from pages, up to ~4 MB of Arrow data. With 4 workers this keeps a
# 360×170 ingestion near 350 MB peak RSS, start-up included.
TARGET_PAGE_BYTES = 2 * 2**20
FIRST_PAGE_SIZE = {1: 500, 2: 4}  # until a page (or a finished run of the unit) shows a row
ROW_GROUP_BYTES = 4 * 2**20
_POOL = pa.default_memory_pool()


@dataclass(frozen=True)
class RunResult:
    key: UnitKey
    run: int
    rows: int = 0
    json_bytes: int = 0
    file_bytes: int = 0
    seconds: float = 0.0
    skipped: bool = False
    error: str | None = None


@dataclass
class FetchReport:
    results: list[RunResult] = field(default_factory=list)

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if r.error]

    @property
    def written(self) -> list[RunResult]:
        return [r for r in self.results if not r.error and not r.skipped]

    @property
    def skipped(self) -> list[RunResult]:
        return [r for r in self.results if r.skipped]


def page_size_for(rows: int, json_bytes: int, dim: int) -> int:
    """Rows per page that keep a page near TARGET_PAGE_BYTES, from what a run weighed."""
    if rows <= 0 or json_bytes <= 0:
        return FIRST_PAGE_SIZE[dim]
    return rows_for_bytes(TARGET_PAGE_BYTES, rows, json_bytes)


def ingest_run(client: DialsClient, unit: Unit, run: int, outdir: Path, manifest: Manifest,
               *, test: bool = False, first_page_size: int | None = None,
               limit: PageLimit | None = None,
               certification: str | None = None, upstream_stuck: bool = False) -> RunResult:
    """Fetch one run of one unit into run_<run>.parquet; raises DialsflowError on failure.
    `first_page_size`: rows of the first page (default: small for 2D until a page is seen);
    `limit`: the page sizes DIALS was too slow for, shared by the runs of the unit;
    `certification` (the CAF file that certified the run) and `upstream_stuck` (DIALS still
    had files of it in flight) go into the manifest entry."""
    key = unit.key
    what = f"{key.dataset} × {key.me} run {run}"
    t0 = time.perf_counter()
    target = run_file(outdir, key, run)
    params = {"dataset_id": unit.dataset_id, "me_id": unit.me_id, "run_number": run,
              "fields": ",".join(FIELDS[unit.dim])}
    manifest.forget(key, run)  # the old entry must not vouch for a file being replaced
    rows = json_bytes = 0
    ls: list[int] = []
    url = client.api_url + unit.endpoint
    footer = footer_metadata(dataset_id=unit.dataset_id, me_id=unit.me_id,
                             workspace=key.workspace, source_url=url, dim=unit.dim,
                             certification=certification)
    last: tuple[int, int] | None = None  # (run, ls) of the last row written

    def write(batches: list[pa.RecordBatch]) -> None:
        nonlocal last
        table = sort_batches(batches)
        first, end = first_last(table)
        if last is not None and first < last:  # DIALS orders by (run, ls): never seen
            raise ServiceError(f"{what}: DIALS sent LS {first[1]} after LS {last[1]}; the "
                               "file would not be sorted by (run_number, ls_number)")
        writer.write_table(table)
        last = end

    with atomic.publishing(target) as tmp:
        with pq.ParquetWriter(tmp, SCHEMA.with_metadata(footer), **writer_options()) as writer:
            pending: list[pa.RecordBatch] = []
            for page, nbytes in client.pages(unit.endpoint, params, what=what,
                                             page_size=first_page_size
                                             or FIRST_PAGE_SIZE[unit.dim],
                                             target_bytes=TARGET_PAGE_BYTES, limit=limit,
                                             prefetch=not test):
                json_bytes += nbytes
                if page:
                    pending.append(to_batch(page, unit.dim, key.dataset, key.me))
                    rows += len(page)
                    ls.extend(r["ls_number"] for r in page)
                    if sum(b.nbytes for b in pending) >= ROW_GROUP_BYTES:
                        write(pending)
                        pending = []
                        _POOL.release_unused()  # mimalloc keeps freed pages for a while
                del page  # before the next page is fetched and parsed
                if test:  # --test: the first page is enough to see it works
                    break
            if pending:
                write(pending)
    size = target.stat().st_size
    manifest.record(RunEntry(
        workspace=key.workspace, dataset=key.dataset, dataset_id=unit.dataset_id, me=key.me,
        me_id=unit.me_id, dim=unit.dim, run=run, rows=rows, ls_ranges=to_ranges(ls),
        bytes=size, sha256=file_sha256(target),
        ingested_at=now_iso(), complete=not test,
        source={"url": url,
                "workspace": client.settings.workspace, "filters": params},
        certification=certification, upstream_stuck=upstream_stuck,
    ))
    return RunResult(key, run, rows, json_bytes, size, time.perf_counter() - t0)


class Progress:
    """One line per run and a summary per unit: plain lines, fine for Airflow task logs."""

    def __init__(self, total_runs: int, runs_per_unit: dict[UnitKey, int]) -> None:
        self.total = total_runs
        self.left = dict(runs_per_unit)
        self.unit_results: dict[UnitKey, list[RunResult]] = {k: [] for k in runs_per_unit}
        self.done = 0
        self.t0 = time.perf_counter()
        self.lock = threading.Lock()

    def __call__(self, result: RunResult) -> None:
        with self.lock:
            self.done += 1
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / self.done * (self.total - self.done)
            position = f"[{self.done}/{self.total} runs, ETA {eta:.0f} s]"
            r = result
            if r.error:
                log.error("%s run %d FAILED: %s %s", r.key, r.run, r.error, position)
            elif r.skipped:
                log.info("%s run %d: complete in manifest, skipped %s", r.key, r.run, position)
            else:
                mb = r.json_bytes / 1e6
                log.info("%s run %d: %d rows, %.2f MB JSON -> %.2f MB parquet, %.1f MB/s %s",
                         r.key, r.run, r.rows, mb, r.file_bytes / 1e6,
                         mb / r.seconds if r.seconds else 0.0, position)
            self.unit_results[r.key].append(r)
            self.left[r.key] -= 1
            if self.left[r.key] == 0:
                self._summary(r.key)

    def _summary(self, key: UnitKey) -> None:
        res = self.unit_results[key]
        written = [r for r in res if not r.error and not r.skipped]
        mb = sum(r.json_bytes for r in written) / 1e6
        log.info("unit %s: %d runs written (%d rows, %.1f MB JSON), %d skipped, %d failed",
                 key, len(written), sum(r.rows for r in written), mb,
                 sum(r.skipped for r in res), sum(bool(r.error) for r in res))


def ingest_units(client: DialsClient, units: list[Unit], outdir: Path, *,
                 resubmit: bool = False, test: bool = False, concurrency: int = 4,
                 on_result: Callable[[RunResult], None] | None = None,
                 certified_by: Mapping[int, str] | None = None,
                 stuck: frozenset[int] = frozenset()) -> FetchReport:
    """Fetch every run of every unit; failures are reported per run, not raised, except a
    full disk: the first `DiskFull` cancels the runs not started and is raised, once.
    `certified_by` (run → CAF file) and `stuck` (runs with DIALS files still in flight) are
    recorded in the manifest entries."""
    manifest = Manifest(outdir)
    tasks: list[tuple[Unit, int]] = []
    report = FetchReport()
    for unit in units:
        atomic.sweep_temporaries(unit_dir(outdir, unit.key))
        manifest.sweep_temporaries(unit.key)
        tasks.extend((unit, run) for run in unit.runs)
    progress = Progress(len(tasks), {u.key: len(u.runs) for u in units})
    notify = on_result or progress
    learned: dict[UnitKey, int] = {}  # rows per page, from a finished run of the unit
    # Page sizes DIALS was too slow for: runs of a unit have rows of the same weight.
    limits = {unit.key: PageLimit() for unit in units}

    def one(unit: Unit, run: int) -> RunResult:
        if resubmit and manifest.is_complete(unit.key, run):
            return RunResult(unit.key, run, skipped=True)
        try:
            result = ingest_run(client, unit, run, outdir, manifest, test=test,
                                first_page_size=learned.get(unit.key),
                                limit=limits[unit.key],
                                certification=(certified_by or {}).get(run),
                                upstream_stuck=run in stuck)
        except atomic.DiskFull:
            raise  # not this run's failure: every later one would fail alike
        except DialsflowError as exc:
            return RunResult(unit.key, run, error=str(exc))
        except OSError as exc:
            return RunResult(unit.key, run, error=f"cannot write {run_file(outdir, unit.key, run)}"
                                                  f": {exc.strerror or exc}")
        # Later runs of the unit start with full-size pages: no small probing page each.
        learned[unit.key] = page_size_for(result.rows, result.json_bytes, unit.dim)
        return result

    full: atomic.DiskFull | None = None
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(one, unit, run) for unit, run in tasks]
        for future in as_completed(futures):
            try:
                result = future.result()
            except atomic.DiskFull as exc:  # stop at the first: runs not started never start
                full = exc
                pool.shutdown(wait=True, cancel_futures=True)
                break
            report.results.append(result)
            notify(result)
    if full is not None:
        finished = [f.result() for f in futures
                    if f.done() and not f.cancelled() and f.exception() is None]
        written = sum(1 for r in finished if not r.error and not r.skipped)
        raise atomic.DiskFull(f"{full}; stopped after {written} runs written (each complete "
                              "and recorded): free space and run again")
    report.results.sort(key=lambda r: (r.key, r.run))
    return report


def runs_to_do(manifest: Manifest, unit: Unit, *, force: bool, since: str) -> list[int]:
    """Runs still missing. On a retry of a forced run, runs re-ingested since `since` (this
    DAG run's start) are kept: retries resume instead of restarting."""
    todo = []
    for run in unit.runs:
        entry = manifest.get(unit.key, run) if manifest.is_complete(unit.key, run) else None
        if entry is None or (force and entry.ingested_at < since):
            todo.append(run)
    return todo


def fetch(settings: DialsSettings, datasets: list[str], mes: list[str], outdir: Path, *,
          me_type: str = "auto", runs: RunSelection | None = None,
          resubmit: bool = False, test: bool = False, concurrency: int = 4,
          on_result: Callable[[RunResult], None] | None = None) -> FetchReport:
    """The one-off pull behind `dialsflow fetch`: patterns → units → parquet. OUTDIR is
    created once DIALS has answered (units resolved): a wrong connection or an unreachable
    DIALS leaves nothing behind."""
    with DialsClient(settings, pool_size=max(4, concurrency)) as client:
        units = resolve_units(client, datasets, mes, me_type, runs,
                              settings.workspace or DEFAULT_WORKSPACE)
        ensure_writable(outdir)
        log.info("plan: %d dataset × ME units, %d runs to fetch", len(units),
                 sum(len(u.runs) for u in units))
        return ingest_units(client, units, outdir, resubmit=resubmit, test=test,
                            concurrency=concurrency, on_result=on_result)
