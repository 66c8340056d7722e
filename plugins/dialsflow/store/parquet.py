"""DIALS th1/th2 rows (parsed JSON) straight into Arrow record batches: schema v2.

One schema for every ME, so a whole output tree (1D and 2D MEs) reads in one query:
dataset, me, dataset_id, file_id, run_number, ls_number, me_id, x_min, x_max, x_bin,
y_min, y_max, y_bin, entries, data. Bins are int64, bounds doubles; 1D rows have null
y_min, y_max and y_bin. `data` is a flat list<double> of y_bin × x_bin values, row-major
(y then x: DIALS' data[iy][ix] flattened), x_bin values for 1D, so for one 2D ME
`np.asarray(t.column("data").combine_chunks().values).reshape(n, y_bin, x_bin)`.
Files declare `sorting_columns` (run_number, ls_number), are written with `writer_options`
(zstd; BYTE_STREAM_SPLIT for `data`) and carry footer key-value metadata
(`footer_metadata`); `dialsflow.schema_version` is "2".

Files written before schema v2 (no `dialsflow.schema_version` key) keep their schema: double
bins, no y_* columns in 1D files and list<list<double>> data for 2D. `schema_version` tells
them apart; `read_lumis` reads both.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dialsflow.errors import InputError

SCHEMA_VERSION = 2
#: Footer key-value metadata keys (`footer_metadata`).
META_PREFIX = "dialsflow."
VERSION_KEY = META_PREFIX + "schema_version"
INT_COLUMNS = ("dataset_id", "file_id", "run_number", "ls_number", "me_id")
AXIS_1D = ("x_min", "x_max", "x_bin")
AXIS_2D = ("x_min", "x_max", "x_bin", "y_min", "y_max", "y_bin")
BIN_COLUMNS = ("x_bin", "y_bin")
#: What DIALS must send (`fields`): dataset and ME names are known, no need to ship them.
FIELDS = {1: (*INT_COLUMNS, *AXIS_1D, "entries", "data"),
          2: (*INT_COLUMNS, *AXIS_2D, "entries", "data")}
#: Declared in every file's row groups; rows are written in this order.
SORTING = ("run_number", "ls_number")

SCHEMA = pa.schema(
    [pa.field("dataset", pa.string()), pa.field("me", pa.string())]
    + [pa.field(c, pa.int64()) for c in INT_COLUMNS]
    + [pa.field(c, pa.int64() if c in BIN_COLUMNS else pa.float64()) for c in AXIS_2D]
    + [pa.field("entries", pa.int64()), pa.field("data", pa.list_(pa.float64()))]
)


def sorting_columns() -> list[pq.SortingColumn]:
    return [pq.SortingColumn(SCHEMA.get_field_index(c)) for c in SORTING]


def writer_options() -> dict[str, Any]:
    """ParquetWriter options of every run file. zstd, and BYTE_STREAM_SPLIT instead of
    dictionary encoding for `data`: 20 % smaller than snappy + dictionary on 360×170 maps,
    12 % on 72×26, at the same conversion + write time (docs/benchmarks.md, "Schema v2")."""
    return {"compression": "zstd", "sorting_columns": sorting_columns(),
            "use_dictionary": [n for n in SCHEMA.names if n != "data"],
            "use_byte_stream_split": ["data.list.element"]}


def public_url(url: str) -> str:
    """`url` without user, password, query or fragment: nothing secret goes into a file."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def footer_metadata(*, dataset_id: int, me_id: int, workspace: str, source_url: str,
                    dim: int, certification: str | None = None) -> dict[str, str]:
    """The key-value metadata written into a run file's footer (all values strings)."""
    from dialsflow import __version__

    meta = {VERSION_KEY: str(SCHEMA_VERSION), "dialsflow.version": __version__,
            "dialsflow.dataset_id": str(int(dataset_id)), "dialsflow.me_id": str(int(me_id)),
            "dialsflow.dim": str(int(dim)), "dialsflow.workspace": workspace,
            "dialsflow.source_url": public_url(source_url)}
    if certification:
        meta["dialsflow.certification"] = certification
    return meta


_NUMPY_TO_ARROW = {np.dtype(np.int32): pa.int32(), np.dtype(np.int64): pa.int64(),
                   np.dtype(np.float64): pa.float64()}


def arrow_array(values: np.ndarray) -> pa.Array:
    """A 1-D numpy array as an Arrow array over the same memory. Not `pa.array(ndarray)`:
    pyarrow imports pandas for that (~1 s and ~60 MB of RSS, for nothing)."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(_NUMPY_TO_ARROW[values.dtype], len(values),
                                 [None, pa.py_buffer(values)])


def _flat(data: list[Any]) -> list[float]:
    """One row's values, 2D rows (lists of lists) flattened row-major."""
    return list(chain.from_iterable(data)) if data and isinstance(data[0], list) else data


def _data(rows: list[dict[str, Any]]) -> pa.Array:
    """`data` as list<double>: one flat run of values per row, over one numpy buffer."""
    try:  # the usual case: every row has the same (y_bin ×) x_bin grid, converted in C
        grid = np.asarray([r["data"] for r in rows], dtype=np.float64)
    except (ValueError, TypeError):
        grid = None
    if grid is not None and grid.ndim >= 2:
        n = grid.shape[0]
        per_row = int(np.prod(grid.shape[1:]))
        return pa.ListArray.from_arrays(arrow_array(np.arange(n + 1, dtype=np.int32) * per_row),
                                        arrow_array(grid.reshape(-1)))
    flats = [_flat(r["data"]) for r in rows]  # ragged rows: rare, per value in Python
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(f) for f in flats], out=offsets[1:])
    values = np.fromiter(chain.from_iterable(flats), dtype=np.float64, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(arrow_array(offsets), arrow_array(values))


def _column(values: list[Any], dtype: type, arrow_type: pa.DataType) -> pa.Array:
    """Via numpy: `pa.array` of a Python list makes pyarrow import pandas, too."""
    try:
        return arrow_array(np.fromiter(values, dtype=dtype, count=len(values)))
    except (TypeError, ValueError, OverflowError):  # nulls or odd values: pyarrow decides
        return pa.array(values, type=arrow_type)


def _repeat(value: str, n: int) -> pa.Array:
    """`value` n times as a string array, built from its buffers (no pandas either)."""
    raw = value.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * len(raw)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))


def to_batch(rows: list[dict[str, Any]], dim: int, dataset: str, me: str) -> pa.RecordBatch:
    """One page of rows as a record batch of `SCHEMA` (1D rows: null y_min, y_max, y_bin)."""
    n = len(rows)
    columns: list[pa.Array] = [_repeat(dataset, n), _repeat(me, n)]
    columns += [_column([r[c] for r in rows], np.int64, pa.int64()) for c in INT_COLUMNS]
    for c in AXIS_2D:
        is_bin = c in BIN_COLUMNS
        if dim == 1 and c.startswith("y_"):
            columns.append(pa.nulls(n, pa.int64() if is_bin else pa.float64()))
        elif is_bin:
            columns.append(_column([r[c] for r in rows], np.int64, pa.int64()))
        else:
            columns.append(_column([r[c] for r in rows], np.float64, pa.float64()))
    columns.append(_column([r["entries"] for r in rows], np.int64, pa.int64()))
    columns.append(_data(rows))
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def sort_batches(batches: list[pa.RecordBatch]) -> pa.Table:
    """Batches as one table in (run_number, ls_number) order; sorted only when not already."""
    table = pa.Table.from_batches(batches, schema=SCHEMA)
    keys = [table.column(c).to_numpy() for c in SORTING]
    if len(table) > 1 and not _ordered(keys):
        table = table.take(arrow_array(np.lexsort(keys[::-1]).astype(np.int64)))
    return table


def _ordered(keys: list[np.ndarray]) -> bool:
    run, ls = keys
    d_run, d_ls = np.diff(run), np.diff(ls)
    return bool(np.all((d_run > 0) | ((d_run == 0) & (d_ls >= 0))))


def first_last(table: pa.Table) -> tuple[tuple[int, int], tuple[int, int]]:
    """(run, ls) of the first and the last row of a non-empty sorted table."""
    run, ls = (table.column(c) for c in SORTING)
    return (run[0].as_py(), ls[0].as_py()), (run[-1].as_py(), ls[-1].as_py())


def schema_version(path: Path) -> int:
    """2 for files with the `dialsflow.schema_version` footer key, 1 for older files."""
    meta = pq.read_schema(path).metadata or {}
    return int(meta.get(VERSION_KEY.encode(), b"1"))


def file_metadata(path: Path) -> Mapping[str, str]:
    """The `dialsflow.*` footer key-value metadata of a file (empty for v1 files)."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()
            if k.startswith(META_PREFIX.encode())}


def read_lumis(path: Path) -> frozenset[int]:
    """LS numbers in a run's parquet file (only `ls_number` is read); empty when absent.
    Reads schema v1 and v2 files alike."""
    try:
        column = pq.read_table(path, columns=["ls_number"]).column("ls_number")
    except FileNotFoundError:
        return frozenset()
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path} is not a readable dialsflow parquet file ({exc}); delete it "
                         "and fetch that run again") from None
    return frozenset(column.to_pylist())
