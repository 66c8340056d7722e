"""Maps of one dataset × ME as numpy, with their LS certification and OMS conditions.

    m = dialsflow.read(outdir, dataset, me, certified="golden", min_entries=1,
                       conditions=("pileup", "beams_stable"), where=pc.field("pileup") > 25)
    m.values        # (n, y_bin, x_bin) float64 for 2D MEs, (n, x_bin) for 1D
    m.run_number, m.ls_number, m.entries   # numpy, one per map, sorted by (run, ls)
    m.conditions    # pyarrow Table aligned row by row (nulls where OMS has no row)

Fast because the rows are decided before any map is read: the small columns (run_number,
ls_number, entries, bins) of every run file come first, certification and conditions are
joined on (run, ls) in numpy, then only the row groups holding chosen rows are decoded,
`data` batch by batch, straight into one preallocated array (run files in parallel). Maps
are loaded on first use of `.values`; `iter_batches(n)` streams them instead. Schema v1
files (double bins, list<list<double>> 2D data) read the same. No pandas needed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dialsflow.config.runs import RunSelection
from dialsflow.errors import InputError
from dialsflow.store.layout import (
    RUN_FILE,
    UnitKey,
    UnsafeNameError,
    certification_table,
    conditions_dir,
    conditions_file,
    decode_name,
    parquet_runs,
    run_file,
    units_on_disk,
)

# numpy → Arrow without `pa.array`, whose first call looks for pandas (~40 ms)
from dialsflow.store.parquet import arrow_array

CERTIFIED = ("golden", "dcs")
KEY_COLUMNS = ("run_number", "ls_number", "entries")
#: Decoded `data` per batch while filling the output: about one row group as ingest writes
#: them. Larger batches span row groups and cost peak memory for no speed (~100 MB more per
#: reading thread at 32 MB on EB 360×170, docs/benchmarks.md).
BATCH_BYTES = 4 << 20
#: Row groups up to this size (uncompressed) are decoded whole; ingest writes ~4 MB ones.
GROUP_BYTES = 16 << 20
#: Run files decoded at once: each holds about one batch, so memory stays the result's plus
#: a few MB per thread.
MAX_THREADS = 8
_LS_BITS = 24  # (run, ls) → one int64 key; LS numbers stay far below 2**24


def _shorten(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "")


def _keys(run: np.ndarray, ls: np.ndarray) -> np.ndarray:
    return (run.astype(np.int64) << _LS_BITS) | ls.astype(np.int64)


def _positions(keys: np.ndarray, other: np.ndarray) -> np.ndarray:
    """For each key its row in `other` (sorted or not), -1 where absent."""
    order = np.argsort(other, kind="stable")
    ranked = other[order]
    at = np.searchsorted(ranked, keys)
    at_clipped = np.minimum(at, max(len(ranked) - 1, 0))
    found = (at < len(ranked)) & (ranked[at_clipped] == keys) if len(ranked) else \
        np.zeros(len(keys), dtype=bool)
    return np.where(found, order[at_clipped] if len(ranked) else 0, -1)


def _take(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """Rows of `table` by position; -1 gives a row of nulls."""
    missing = rows < 0
    if not missing.any():
        return table.take(arrow_array(rows))
    valid = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    indices = pa.Array.from_buffers(pa.int64(), len(rows),
                                    [valid, pa.py_buffer(np.maximum(rows, 0))])
    return table.take(indices)


def _run_selection(runs: Any) -> RunSelection | None:
    if runs is None or isinstance(runs, RunSelection):
        return runs
    if isinstance(runs, str):
        return RunSelection.parse(runs)
    try:
        return RunSelection.of([runs] if isinstance(runs, int) else runs)
    except (TypeError, ValueError):
        raise InputError(f"runs={runs!r}: give a RunSelection, 'FIRST-LAST', 'a,b,c' or an "
                         "iterable of positive run numbers") from None


# --- finding the files -------------------------------------------------------------------

def _direct_hits(outdir: Path, dataset: str, me: str, workspace: str | None
                 ) -> list[UnitKey]:
    """The workspaces with run files of dataset × ME, without walking the whole tree."""
    if workspace is not None:
        names = [workspace]
    else:
        names = []
        for p in outdir.iterdir():
            if p.is_dir() and not p.name.startswith(("_", ".")):
                with contextlib.suppress(UnsafeNameError):
                    names.append(decode_name(p.name))
    hits = []
    for ws in sorted(names):
        with contextlib.suppress(UnsafeNameError):
            if parquet_runs(outdir, key := UnitKey(ws, dataset, me)):
                hits.append(key)
    return hits


def find_unit(outdir: Path, dataset: str, me: str, workspace: str | None) -> UnitKey:
    """The one workspace holding dataset × ME under OUTDIR; errors list what exists."""
    if not outdir.is_dir():
        raise InputError(f"output directory {outdir} does not exist: give the -o of "
                         "dialsflow fetch (or a job's output)")
    hits = _direct_hits(outdir, dataset, me, workspace)
    if len(hits) == 1:
        return hits[0]
    units = units_on_disk(outdir)  # only to explain what is wrong
    if workspace is not None:
        units = [u for u in units if u.workspace == workspace]
        if not units:
            raise InputError(f"no workspace {workspace!r} under {outdir}")
    hits = [u for u in units if u.dataset == dataset and u.me == me]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise InputError(f"{dataset} × {me} is in several workspaces under {outdir} "
                         f"({', '.join(u.workspace for u in hits)}): pass workspace=")
    datasets = sorted({u.dataset for u in units})
    if dataset not in datasets:
        raise InputError(f"no dataset {dataset!r} under {outdir}; there are: "
                         f"{_shorten(datasets) or 'none'}")
    mes = sorted({u.me for u in units if u.dataset == dataset})
    raise InputError(f"no ME {me!r} for {dataset} under {outdir}; there are: {_shorten(mes)}")


@dataclass(frozen=True)
class _File:
    path: Path
    version: int  # 1: list<list<double>> 2D data
    rows: np.ndarray  # chosen row numbers in the file, ascending


def _read_keys(path: Path) -> tuple[pa.Table, int, tuple[int, ...]]:
    """The small columns of a run file, its schema version and its map shape."""
    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        bins = [c for c in ("y_bin", "x_bin") if c in names]
        small = pf.read(columns=[*KEY_COLUMNS, *bins])
    except (OSError, ValueError, KeyError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path} is not a readable dialsflow parquet file ({exc})") from None
    meta = pf.schema_arrow.metadata or {}
    version = int(meta.get(b"dialsflow.schema_version", b"1"))
    shape: tuple[int, ...] = ()
    if small.num_rows:
        first = {c: small.column(c)[0].as_py() for c in bins}
        shape = tuple(int(first[c]) for c in ("y_bin", "x_bin") if first.get(c) is not None)
        for c in bins:
            column = small.column(c)
            if column.null_count not in (0, len(column)) or pc.min_max(column).as_py() != \
                    {"min": first[c], "max": first[c]}:
                raise InputError(f"{path}: the ME changes binning within the run")
    return small.select(list(KEY_COLUMNS)), version, shape


@dataclass
class _Scan:
    """Every row of the chosen run files: keys, entries and where each row lives."""

    unit: UnitKey
    shape: tuple[int, ...]
    paths: list[Path]
    versions: list[int]
    run: np.ndarray
    ls: np.ndarray
    entries: np.ndarray
    file: np.ndarray  # index into paths
    row: np.ndarray  # row number inside that file

    def subset(self, mask_or_index: np.ndarray) -> _Scan:
        return _Scan(self.unit, self.shape, self.paths, self.versions,
                     *(a[mask_or_index] for a in (self.run, self.ls, self.entries, self.file,
                                                  self.row)))

    def files(self) -> list[tuple[_File, int]]:
        """(file, first output row) per file holding chosen rows, in output order."""
        cuts = [0, *(np.flatnonzero(np.diff(self.file)) + 1), len(self.file)]
        return [(_File(self.paths[self.file[lo]], self.versions[self.file[lo]],
                       self.row[lo:hi]), lo) for lo, hi in pairwise(cuts) if hi > lo]


def _scan(outdir: Path, unit: UnitKey, runs: RunSelection | None) -> _Scan:
    all_runs = parquet_runs(outdir, unit)
    chosen = [r for r in all_runs if runs is None or r in runs]
    paths = [run_file(outdir, unit, r) for r in chosen]
    parts, versions, shape = [], [], None
    with ThreadPoolExecutor(min(MAX_THREADS, len(os.sched_getaffinity(0)))) as pool:
        keys = list(pool.map(_read_keys, paths))
    for i, (small, version, file_shape) in enumerate(keys):
        versions.append(version)
        if file_shape and shape is None:
            shape = file_shape
        elif file_shape and file_shape != shape:
            raise InputError(f"{unit} changes binning at run {chosen[i]} ({shape} → "
                             f"{file_shape}): read those runs separately with runs=")
        parts.append((small, i))
    if shape is None:  # nothing chosen (or empty files): the shape of any file of the unit
        for r in all_runs:
            if (file_shape := _read_keys(run_file(outdir, unit, r))[2]):
                shape = file_shape
                break
    columns = [np.concatenate([s.column(c).to_numpy() for s, _ in parts])
               if parts else np.zeros(0, np.int64) for c in KEY_COLUMNS]
    file = np.concatenate([np.full(s.num_rows, i, np.int64) for s, i in parts]) \
        if parts else np.zeros(0, np.int64)
    row = np.concatenate([np.arange(s.num_rows, dtype=np.int64) for s, _ in parts]) \
        if parts else np.zeros(0, np.int64)
    return _Scan(unit, shape or (0,), paths, versions, *columns, file, row)


# --- deciding the rows -------------------------------------------------------------------

def _certified_mask(outdir: Path, scan: _Scan, certified: str) -> np.ndarray:
    if certified not in CERTIFIED:
        raise InputError(f"certified={certified!r}: choose None, 'golden' or 'dcs'")
    path = certification_table(outdir)
    try:
        table = pq.read_table(path, columns=["run_number", "ls_number", certified])
    except FileNotFoundError:
        raise InputError(f"no LS certification under {outdir}: run dialsflow certification "
                         f"-o {outdir} --class <CAF class> first") from None
    except (OSError, ValueError, KeyError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path} is not readable ({exc}); run dialsflow certification -o "
                         f"{outdir} again") from None
    flags = table.column(certified).fill_null(False).to_numpy(zero_copy_only=False)
    at = _positions(_keys(scan.run, scan.ls), _keys(table.column("run_number").to_numpy(),
                                                    table.column("ls_number").to_numpy()))
    return (at >= 0) & flags[np.maximum(at, 0)] if len(flags) else np.zeros(len(at), bool)


def _conditions(outdir: Path, scan: _Scan, columns: Sequence[str] | None) -> pa.Table:
    """The conditions of the scan's rows (`columns`, or every one), nulls where OMS has no
    row for an LS or no file for a run."""
    runs = [int(r) for r in np.unique(scan.run)]
    files = {r: conditions_file(outdir, r) for r in runs}
    present = {r: p for r, p in files.items() if p.is_file()}
    schemas = [pq.read_schema(p) for p in present.values()]
    if not schemas:
        schemas = [pq.read_schema(p) for p in sorted(conditions_dir(outdir).glob("run_*.parquet"))
                   if RUN_FILE.fullmatch(p.name)][:1]
    if not schemas:
        raise InputError(f"no per-LS conditions under {outdir}: run dialsflow conditions -o "
                         f"{outdir} first")
    fields: dict[str, pa.Field] = {}
    for schema in schemas:
        for f in schema:
            fields.setdefault(f.name, f)
    if columns is None:
        columns = [c for c in fields if c not in ("run_number", "ls_number")]
    unknown = [c for c in columns if c not in fields]
    if unknown:
        raise InputError(f"no conditions column {', '.join(map(repr, unknown))} under "
                         f"{outdir}; there are: {', '.join(fields)}")
    schema = pa.schema([fields[c] for c in ("run_number", "ls_number", *columns)])
    tables = []
    for path in present.values():
        t = pq.read_table(path, columns=[c for c in schema.names if c in pq.read_schema(
            path).names])
        tables.append(pa.table({c: t.column(c) if c in t.column_names else
                                pa.nulls(t.num_rows, schema.field(c).type)
                                for c in schema.names}, schema=schema))
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    at = _positions(_keys(scan.run, scan.ls), _keys(
        table.column("run_number").to_numpy(), table.column("ls_number").to_numpy()))
    return _take(table.select(list(columns)), at)


def _where_table(outdir: Path, scan: _Scan) -> pa.Table:
    """What `where` may name: run_number, ls_number, entries and every conditions column."""
    table = pa.table({"run_number": arrow_array(scan.run), "ls_number": arrow_array(scan.ls),
                      "entries": arrow_array(scan.entries)})
    if conditions_dir(outdir).is_dir():
        extra = _conditions(outdir, scan, None)
        for name in extra.column_names:
            table = table.append_column(name, extra.column(name))
    return table


def _where_mask(outdir: Path, scan: _Scan, where: Any) -> np.ndarray:
    if not isinstance(where, pc.Expression):
        raise InputError(f"where must be a pyarrow.compute Expression such as "
                         f"pc.field('pileup') > 25, not {type(where).__name__}")
    table = _where_table(outdir, scan)
    table = table.append_column("__row", arrow_array(np.arange(len(scan.run), dtype=np.int64)))
    try:
        kept = table.filter(where).column("__row").to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise InputError(f"where={where}: {str(exc).splitlines()[0]}; columns: "
                         f"{', '.join(n for n in table.column_names if n != '__row')}") from None
    mask = np.zeros(len(scan.run), dtype=bool)
    mask[kept] = True
    return mask


def _select(outdir: Path, dataset: str, me: str, *, workspace: str | None, runs: Any,
            certified: str | None, min_entries: float | None, where: Any) -> _Scan:
    unit = find_unit(Path(outdir), dataset, me, workspace)
    scan = _scan(Path(outdir), unit, _run_selection(runs))
    mask = np.ones(len(scan.run), dtype=bool)
    if certified is not None:
        mask &= _certified_mask(Path(outdir), scan, certified)
    if min_entries is not None:
        mask &= scan.entries >= min_entries
    if where is not None:
        mask &= _where_mask(Path(outdir), scan, where)
    return scan.subset(mask)


# --- loading the maps --------------------------------------------------------------------

def _batch_values(column: pa.Array, version: int, per: int, where: str) -> np.ndarray:
    """A batch's `data` as a (rows, per) float64 array (no copy when it can be avoided)."""
    rows = len(column)
    if column.null_count:
        out = np.full((rows, per), np.nan)
        for i, value in enumerate(column):
            if value.is_valid:
                out[i] = _batch_values(column.slice(i, 1).drop_null(), version, per, where)[0]
        return out
    flat = column.flatten()
    if version == 1 and pa.types.is_list(flat.type):
        flat = flat.flatten()
    if len(flat) != rows * per:
        raise InputError(f"{where}: a map has other than {per} values")
    return flat.to_numpy(zero_copy_only=False).reshape(rows, per)


def _group_pieces(pf: pq.ParquetFile, group: int, per: int) -> Iterator[tuple[int, pa.Array]]:
    """A row group's `data` as (first row, array) pieces: the whole group at once when it is
    small, as ingest writes them (twice as fast as batches on 72×26 maps), else in batches
    of about BATCH_BYTES."""
    if pf.metadata.row_group(group).total_byte_size <= GROUP_BYTES:
        pieces: Iterable[pa.Array] = pf.read_row_group(group, columns=["data"],
                                                       use_threads=False).column(0).chunks
    else:
        pieces = (b.column(0) for b in pf.iter_batches(
            batch_size=max(1, BATCH_BYTES // (8 * per)), row_groups=[group], columns=["data"],
            use_threads=False))
    first = 0
    for piece in pieces:
        yield first, piece
        first += len(piece)


def _fill(out: np.ndarray, f: _File, start: int) -> None:
    """Copy the chosen rows of one run file into out[start:...], reading only the row groups
    that hold some."""
    per = int(np.prod(out.shape[1:])) if out.ndim > 1 else 1
    pf = pq.ParquetFile(f.path, pre_buffer=True)
    md = pf.metadata
    bounds = np.cumsum([0] + [md.row_group(g).num_rows for g in range(md.num_row_groups)])
    group_of = np.searchsorted(bounds, f.rows, side="right") - 1
    pos = start
    for group in np.unique(group_of):
        local = f.rows[group_of == group] - bounds[group]  # ascending
        for first, piece in _group_pieces(pf, int(group), per):
            n = len(piece)
            lo, hi = np.searchsorted(local, [first, first + n])
            if hi > lo:
                values = _batch_values(piece, f.version, per, str(f.path))
                target = out[pos:pos + hi - lo].reshape(hi - lo, per)
                target[:] = values if hi - lo == n else values[local[lo:hi] - first]
                pos += hi - lo


def _load(scan: _Scan, threads: int | None = None) -> np.ndarray:
    out = np.empty((len(scan.run), *scan.shape), dtype=np.float64)
    jobs = scan.files()
    workers = min(len(jobs), threads or len(os.sched_getaffinity(0)), MAX_THREADS)
    if workers <= 1:
        for f, start in jobs:
            _fill(out, f, start)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for done in [pool.submit(_fill, out, f, start) for f, start in jobs]:
                done.result()
    return out


# --- what users get ----------------------------------------------------------------------

@dataclass
class Maps:
    """The chosen maps of one dataset × ME, sorted by (run, ls). `.values` loads on first
    use; `iter_batches(n)` streams them n at a time without loading them all."""

    dataset: str
    me: str
    workspace: str
    run_number: np.ndarray
    ls_number: np.ndarray
    entries: np.ndarray
    conditions: pa.Table
    _scan: _Scan = field(repr=False)
    _values: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """One map's shape: (y_bin, x_bin) for 2D MEs, (x_bin,) for 1D."""
        return self._scan.shape

    @property
    def values(self) -> np.ndarray:
        if self._values is None:
            self._values = _load(self._scan)
        return self._values

    def __len__(self) -> int:
        return len(self.run_number)

    def _slice(self, lo: int, hi: int) -> Maps:
        values = self._values[lo:hi] if self._values is not None else None
        part = Maps(self.dataset, self.me, self.workspace, self.run_number[lo:hi],
                    self.ls_number[lo:hi], self.entries[lo:hi], self.conditions.slice(lo, hi - lo),
                    self._scan.subset(slice(lo, hi)), values)
        return part

    def iter_batches(self, n: int) -> Iterator[Maps]:
        """Maps of at most n rows each, in order, with their values loaded."""
        if n < 1:
            raise InputError(f"iter_batches(n): n must be at least 1, not {n}")
        for lo in range(0, len(self), n):
            part = self._slice(lo, min(lo + n, len(self)))
            if part._values is None:
                part._values = _load(part._scan, threads=1)
            yield part


def _maps(outdir: Path, scan: _Scan, conditions: Sequence[str]) -> Maps:
    cond = _conditions(outdir, scan, list(conditions)) if conditions else \
        pa.table({"rows": pa.nulls(len(scan.run))}).select([])
    return Maps(scan.unit.dataset, scan.unit.me, scan.unit.workspace, scan.run, scan.ls,
                scan.entries, cond, scan)


def _conditions_names(conditions: Iterable[str] | str) -> list[str]:
    if isinstance(conditions, str):
        conditions = [conditions]
    return list(dict.fromkeys(conditions))


def read(outdir: str | Path, dataset: str, me: str, *, workspace: str | None = None,
         runs: Any = None, certified: str | None = None, min_entries: float | None = None,
         conditions: Iterable[str] | str = (), where: pc.Expression | None = None) -> Maps:
    """The maps of one dataset × ME under OUTDIR (module docstring): every run, or `runs`
    (a RunSelection, 'FIRST-LAST', 'a,b,c' or run numbers); only LS that `certified`
    ('golden' or 'dcs', from `dialsflow certification`) holds, with at least `min_entries`
    entries and for which `where` (an Expression over run_number, ls_number, entries and
    the conditions columns) is true; `conditions` columns aligned row by row."""
    outdir = Path(outdir)
    scan = _select(outdir, dataset, me, workspace=workspace, runs=runs, certified=certified,
                   min_entries=min_entries, where=where)
    return _maps(outdir, scan, _conditions_names(conditions))


@dataclass
class AlignedMaps:
    """Several MEs of one dataset on the same (run, ls) rows: `aligned[me]` is a Maps."""

    maps: dict[str, Maps]
    run_number: np.ndarray
    ls_number: np.ndarray
    conditions: pa.Table

    def __getitem__(self, me: str) -> Maps:
        return self.maps[me]

    def __len__(self) -> int:
        return len(self.run_number)

    @property
    def mes(self) -> list[str]:
        return list(self.maps)

    def iter_batches(self, n: int) -> Iterator[AlignedMaps]:
        """The same rows n at a time, every ME's values loaded for those rows only."""
        streams = [m.iter_batches(n) for m in self.maps.values()]
        for parts in zip(*streams, strict=True):
            first = parts[0]
            yield AlignedMaps(dict(zip(self.maps, parts, strict=True)), first.run_number,
                              first.ls_number, first.conditions)


def read_many(outdir: str | Path, dataset: str, mes: Iterable[str], *,
              workspace: str | None = None, runs: Any = None, certified: str | None = None,
              min_entries: float | None = None, conditions: Iterable[str] | str = (),
              where: pc.Expression | None = None) -> AlignedMaps:
    """`read` of several MEs of one dataset, kept to the (run, ls) every ME has (and every
    filter passes, `min_entries` per ME)."""
    outdir = Path(outdir)
    names = [mes] if isinstance(mes, str) else list(dict.fromkeys(mes))
    if not names:
        raise InputError("read_many needs at least one ME")
    scans = [_select(outdir, dataset, me, workspace=workspace, runs=runs, certified=certified,
                     min_entries=min_entries, where=where) for me in names]
    common = _keys(scans[0].run, scans[0].ls)
    for s in scans[1:]:
        common = np.intersect1d(common, _keys(s.run, s.ls))
    scans = [s.subset(np.isin(_keys(s.run, s.ls), common)) for s in scans]
    cond_names = _conditions_names(conditions)
    maps = {me: _maps(outdir, s, cond_names if i == 0 else ()) for i, (me, s) in
            enumerate(zip(names, scans, strict=True))}
    first = maps[names[0]]
    return AlignedMaps(maps, first.run_number, first.ls_number, first.conditions)
