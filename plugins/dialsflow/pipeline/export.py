"""Exports in the seed's (dialstools') format, so loaders written for it run unchanged.

One file per dataset × ME holding all its runs, named `layout.dialstools_name` and holding the
columns the seed's `get_data_dials.py` wrote (LukaLambrecht/dialstools,
datasets/get_data_dials.py: cmsdials `h1d/h2d.list_all(...).to_pandas()` per run, concatenated
and written with `DataFrame.to_parquet`): dataset, me, dataset_id, file_id, run_number,
ls_number, me_id, x_min, x_max, x_bin, [y_min, y_max, y_bin,] entries, data. Bins are doubles
(cmsdials' models say float); `data` is list<double> for 1D and list<list<double>> (y rows of x
values) for 2D, so pixelae's `np.stack(df['data'][i]).reshape(ybins, xbins)` works
(pixelae, tools/dftools.py `get_mes`).

Written run by run, one row group per run (memory is about three times one run's values, whatever
the year: 574 MB peak for 300 EB 360×170 LS, 147 MB of values), into a
temporary file published atomically. Only runs the manifest records as complete are exported;
an export that is newer than every manifest entry of its unit and holds the same runs is left
as it is. Schema v1 and v2 run files are read alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dialsflow.config.jobs import Job
from dialsflow.config.runs import RunSelection
from dialsflow.errors import InputError
from dialsflow.pipeline.completeness import select_units
from dialsflow.store import atomic
from dialsflow.store.layout import (
    UnitKey,
    UnsafeNameError,
    dialstools_name,
    ensure_writable,
    manifest_file,
    run_file,
    units_on_disk,
)
from dialsflow.store.manifest import Manifest
from dialsflow.store.parquet import arrow_array

log = logging.getLogger("dialsflow")

FORMATS = ("dialstools",)
_HEAD = [("dataset", pa.string()), ("me", pa.string())] + [
    (c, pa.int64()) for c in ("dataset_id", "file_id", "run_number", "ls_number", "me_id")]
_X = [(c, pa.float64()) for c in ("x_min", "x_max", "x_bin")]
_Y = [(c, pa.float64()) for c in ("y_min", "y_max", "y_bin")]


def dialstools_schema(dim: int) -> pa.Schema:
    """The seed's columns for a 1D or a 2D ME, in cmsdials' order."""
    data = pa.list_(pa.float64()) if dim == 1 else pa.list_(pa.list_(pa.float64()))
    return pa.schema(_HEAD + _X + (_Y if dim == 2 else []) + [("entries", pa.int64()),
                                                              ("data", data)])


@dataclass(frozen=True)
class ExportResult:
    key: UnitKey
    path: Path
    runs: tuple[int, ...]
    rows: int
    written: bool  # False: the file was already up to date

    def to_json(self) -> dict:
        return {"dataset": self.key.dataset, "me": self.key.me, "path": str(self.path),
                "runs": len(self.runs), "rows": self.rows, "written": self.written}


# ---- choosing what to export --------------------------------------------------------------


def select_export_units(outdir: Path, datasets: list[str],
                        mes: list[str] | None = None) -> list[UnitKey]:
    """Units on disk named by exact names or regexes (an exact name is not read as a regex,
    so '+' or brackets in a name need no escaping); every pattern must match."""
    if not outdir.is_dir():
        raise InputError(f"output directory {outdir} does not exist: give the -o of "
                         "dialsflow fetch")
    found = units_on_disk(outdir)

    def as_regexes(patterns: list[str], names: set[str], what: str) -> list[str]:
        out = []
        for p in patterns:
            if p in names:
                out.append(f"^{re.escape(p)}$")
                continue
            try:
                re.compile(p)
            except re.error as exc:
                raise InputError(f"{what} {p!r} is neither a name on disk nor a valid regex "
                                 f"({exc})") from None
            out.append(p)
        return out

    regexes = as_regexes(datasets, {k.dataset for k in found}, "dataset")
    me_regexes = None if mes is None else as_regexes(mes, {k.me for k in found}, "ME")
    return select_units(found, regexes, me_regexes)


def job_units(outdir: Path, workspace: str, datasets: Iterable[str],
              mes: Iterable[str]) -> list[UnitKey]:
    """A job's units on disk: its workspace, its DIALS patterns (unanchored search)."""
    if not outdir.is_dir():
        return []
    datasets, mes = list(datasets), list(mes)
    return [k for k in units_on_disk(outdir) if k.workspace == workspace
            and any(re.search(p, k.dataset) for p in datasets)
            and any(re.search(p, k.me) for p in mes)]


# ---- the export ---------------------------------------------------------------------------


def export_job(job: Job) -> list[ExportResult]:
    """Every unit of a job with an `export` (its workspace, its patterns) into its folder."""
    if job.export is None:
        raise InputError(f"job {job.name!r} has no export in the jobs file")
    units = job_units(job.output, job.workspace, job.dataset_patterns, job.me_patterns)
    return export_units(job.output, units, job.export.to, fmt=job.export.format,
                        allow_empty=True)


def export_units(outdir: Path, units: list[UnitKey], to: Path, *,
                 runs: RunSelection | None = None, fmt: str = "dialstools",
                 allow_empty: bool = False) -> list[ExportResult]:
    """Export each unit to `to/<dialstools name>`; everything is checked before anything is
    written (format, names, a writable target, and unless `allow_empty` some run to export)."""
    if fmt not in FORMATS:
        raise InputError(f"export format {fmt!r} is not supported; known: {', '.join(FORMATS)}")
    targets: dict[Path, UnitKey] = {}
    for key in units:
        try:
            target = to / dialstools_name(key.dataset, key.me)
        except UnsafeNameError as exc:
            raise InputError(str(exc)) from None
        if target in targets:
            raise InputError(f"{key} and {targets[target]} (workspaces {key.workspace}, "
                             f"{targets[target].workspace}) would both export to "
                             f"{target.name}: export them to different folders")
        targets[target] = key
    wanted = {key: _wanted(outdir, key, runs) for key in units}  # one manifest read per unit
    if not allow_empty and not any(wanted.values()):
        raise InputError(f"nothing to export: no complete run{f' in {runs}' if runs else ''} "
                         f"under {outdir} for the chosen datasets and MEs")
    ensure_writable(to)
    atomic.sweep_temporaries(to)
    return [export_unit(outdir, key, target, wanted[key], runs)
            for target, key in targets.items()]


def export_unit(outdir: Path, key: UnitKey, target: Path, wanted: list[int],
                runs: RunSelection | None = None) -> ExportResult:
    """One unit's `wanted` runs (its complete runs within `runs`) into `target`, unless it
    is up to date."""
    if not wanted:
        log.info("export: %s has no complete run%s; nothing written", key,
                 f" in {runs}" if runs else "")
        return ExportResult(key, target, (), 0, written=False)
    if _up_to_date(outdir, key, target, wanted):
        rows = pq.ParquetFile(target).metadata.num_rows
        return ExportResult(key, target, tuple(wanted), rows, written=False)
    rows = 0
    with atomic.publishing(target) as tmp:
        writer: pq.ParquetWriter | None = None
        try:
            for run in wanted:
                table = _run_table(run_file(outdir, key, run))
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, **_writer_options(table.schema))
                elif table.schema != writer.schema:
                    raise InputError(f"{key}: run {run} is not of the same dimension as the "
                                     "runs before it; fetch it again")
                writer.write_table(table, row_group_size=max(1, table.num_rows))
                rows += table.num_rows
        finally:
            if writer is not None:
                writer.close()
    log.info("export: %s → %s (%d runs, %d rows)", key, target, len(wanted), rows)
    return ExportResult(key, target, tuple(wanted), rows, written=True)


def _wanted(outdir: Path, key: UnitKey, runs: RunSelection | None) -> list[int]:
    return sorted(r for r in Manifest(outdir).complete_runs(key) if runs is None or r in runs)


def _writer_options(schema: pa.Schema) -> dict:
    """As the run files (store/parquet.py `writer_options`): zstd, BYTE_STREAM_SPLIT for the
    values of `data`, sorted by (run, LS)."""
    nested = pa.types.is_list(schema.field("data").type.value_type)
    values = "data.list.element.list.element" if nested else "data.list.element"
    return {"compression": "zstd", "use_dictionary": [n for n in schema.names if n != "data"],
            "use_byte_stream_split": [values],
            "sorting_columns": [pq.SortingColumn(schema.get_field_index(c))
                                for c in ("run_number", "ls_number")]}


def exported_runs(path: Path) -> list[int] | None:
    """The runs of an export file, one per row group (None when it is not readable)."""
    try:
        meta = pq.ParquetFile(path).metadata
        column = meta.schema.to_arrow_schema().get_field_index("run_number")
        runs = []
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(column).statistics
            if stats is None or not stats.has_min_max or stats.min != stats.max:
                return None
            runs.append(int(stats.min))
        return runs
    except (OSError, ValueError, pa.ArrowException):
        return None


def _up_to_date(outdir: Path, key: UnitKey, target: Path, runs: list[int]) -> bool:
    try:
        written = target.stat().st_mtime_ns
        entries = [manifest_file(outdir, key, e.run).stat().st_mtime_ns
                   for e in Manifest(outdir).entries(key)]
    except FileNotFoundError:
        return False
    return all(written > m for m in entries) and exported_runs(target) == runs


# ---- one run file as the seed's rows -------------------------------------------------------


def _run_table(path: Path) -> pa.Table:
    """A run file (schema v1 or v2) as the seed's columns; both are written in (run, LS)
    order, so the rows stay as they are."""
    try:
        table = pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise InputError(f"{path} is not a readable dialsflow parquet file ({exc}); delete it "
                         "and fetch that run again") from None
    data = table.column("data")  # chunk by chunk (a row group each): no copy of the values
    nested = pa.types.is_list(data.type.value_type)  # v1 2D
    two_d = nested or ("y_bin" in table.column_names and table.column("y_bin").null_count == 0
                       and len(table) > 0)
    if two_d and not nested:
        table = table.combine_chunks() if table.column("y_bin").num_chunks != data.num_chunks \
            else table
        data = pa.chunked_array(
            [_nest(chunk, y.to_numpy(), x.to_numpy(), path) for chunk, y, x in
             zip(table.column("data").chunks, table.column("y_bin").chunks,
                 table.column("x_bin").chunks, strict=True)],
            type=pa.list_(pa.list_(pa.float64())))
    schema = dialstools_schema(2 if two_d else 1)
    columns = [data if f.name == "data" else table.column(f.name).cast(f.type)
               for f in schema]
    meta = {b"dialsflow.export_format": b"dialstools"}
    return pa.Table.from_arrays(columns, schema=schema.with_metadata(meta))


def _nest(flat: pa.ListArray, y_bin: np.ndarray, x_bin: np.ndarray, path: Path) -> pa.ListArray:
    """Flat row-major 2D rows (schema v2) as lists of y rows of x values."""
    y_bin, x_bin = y_bin.astype(np.int64), x_bin.astype(np.int64)
    lengths = np.diff(np.asarray(flat.offsets))
    if not np.array_equal(lengths, y_bin * x_bin):
        raise InputError(f"{path}: a row's data does not have y_bin × x_bin values; fetch that "
                         "run again")
    start = flat.offsets[0].as_py()
    values = flat.values.slice(start, int(lengths.sum()))
    inner = np.zeros(int(y_bin.sum()) + 1, dtype=np.int32)
    np.cumsum(np.repeat(x_bin, y_bin), out=inner[1:])
    outer = np.zeros(len(y_bin) + 1, dtype=np.int32)
    np.cumsum(y_bin, out=outer[1:])
    rows = pa.ListArray.from_arrays(arrow_array(inner), values)
    return pa.ListArray.from_arrays(arrow_array(outer), rows)
