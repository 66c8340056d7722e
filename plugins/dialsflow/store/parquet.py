"""DIALS th1/th2 rows (parsed JSON) straight into Arrow record batches.

The schema is the seed scripts' DataFrame (cmsdials' model field order and types):
dataset, me, dataset_id, file_id, run_number, ls_number, me_id, x_min, x_max, x_bin,
[y_min, y_max, y_bin,] entries, data. 1D `data` is list<double> (x_bin values); 2D `data` is
list<list<double>>, y_bin rows of x_bin values (DIALS' data[iy][ix]), so
`np.stack([np.stack(d) for d in df.data])` has shape (n, y_bin, x_bin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dialsflow.errors import InputError

INT_COLUMNS = ("dataset_id", "file_id", "run_number", "ls_number", "me_id")
AXIS_1D = ("x_min", "x_max", "x_bin")
AXIS_2D = ("x_min", "x_max", "x_bin", "y_min", "y_max", "y_bin")
#: What DIALS must send (`fields`): dataset and ME names are known, no need to ship them.
FIELDS = {1: (*INT_COLUMNS, *AXIS_1D, "entries", "data"),
          2: (*INT_COLUMNS, *AXIS_2D, "entries", "data")}


def schema(dim: int) -> pa.Schema:
    data_type = pa.list_(pa.float64()) if dim == 1 else pa.list_(pa.list_(pa.float64()))
    axes = AXIS_1D if dim == 1 else AXIS_2D
    return pa.schema(
        [pa.field("dataset", pa.string()), pa.field("me", pa.string())]
        + [pa.field(c, pa.int64()) for c in INT_COLUMNS]
        + [pa.field(c, pa.float64()) for c in axes]
        + [pa.field("entries", pa.int64()), pa.field("data", data_type)]
    )


_NUMPY_TO_ARROW = {np.dtype(np.int32): pa.int32(), np.dtype(np.int64): pa.int64(),
                   np.dtype(np.float64): pa.float64()}


def _arrow(values: np.ndarray) -> pa.Array:
    """A 1-D numpy array as an Arrow array over the same memory. Not `pa.array(ndarray)`:
    pyarrow imports pandas for that (~1 s and ~60 MB of RSS, for nothing)."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(_NUMPY_TO_ARROW[values.dtype], len(values),
                                 [None, pa.py_buffer(values)])


def _data_1d(rows: list[dict[str, Any]]) -> pa.Array:
    try:  # the usual case: every row has x_bin values, converted in C
        grid = np.asarray([r["data"] for r in rows], dtype=np.float64)
    except (ValueError, TypeError):
        grid = None
    if grid is not None and grid.ndim == 2:
        n, nx = grid.shape
        return pa.ListArray.from_arrays(_arrow(np.arange(n + 1, dtype=np.int32) * nx),
                                        _arrow(grid.reshape(-1)))
    lengths = [len(r["data"]) for r in rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.fromiter((v for r in rows for v in r["data"]), dtype=np.float64,
                         count=int(offsets[-1]))
    return pa.ListArray.from_arrays(_arrow(offsets), _arrow(values))


def _data_2d(rows: list[dict[str, Any]]) -> pa.Array:
    try:  # the usual case: every row has the same y_bin × x_bin grid, converted in C
        grid = np.asarray([r["data"] for r in rows], dtype=np.float64)
    except ValueError:
        grid = None
    if grid is None or grid.ndim != 3:
        return pa.array([r["data"] for r in rows], type=pa.list_(pa.list_(pa.float64())))
    n, ny, nx = grid.shape
    inner = pa.ListArray.from_arrays(_arrow(np.arange(n * ny + 1, dtype=np.int32) * nx),
                                     _arrow(grid.reshape(-1)))
    return pa.ListArray.from_arrays(_arrow(np.arange(n + 1, dtype=np.int32) * ny),
                                    inner)


def _column(values: list[Any], dtype: type, arrow_type: pa.DataType) -> pa.Array:
    """Via numpy: `pa.array` of a Python list makes pyarrow import pandas, too."""
    try:
        return _arrow(np.fromiter(values, dtype=dtype, count=len(values)))
    except (TypeError, ValueError, OverflowError):  # nulls or odd values: pyarrow decides
        return pa.array(values, type=arrow_type)


def _repeat(value: str, n: int) -> pa.Array:
    """`value` n times as a string array, built from its buffers (no pandas either)."""
    raw = value.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * len(raw)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))


def to_batch(rows: list[dict[str, Any]], dim: int, dataset: str, me: str) -> pa.RecordBatch:
    """One page of rows as a record batch of `schema(dim)`."""
    n = len(rows)
    axes = AXIS_1D if dim == 1 else AXIS_2D
    columns: list[pa.Array] = [_repeat(dataset, n), _repeat(me, n)]
    columns += [_column([r[c] for r in rows], np.int64, pa.int64()) for c in INT_COLUMNS]
    columns += [_column([r[c] for r in rows], np.float64, pa.float64()) for c in axes]
    columns.append(_column([r["entries"] for r in rows], np.int64, pa.int64()))
    columns.append(_data_1d(rows) if dim == 1 else _data_2d(rows))
    return pa.RecordBatch.from_arrays(columns, schema=schema(dim))


def read_lumis(path: Path) -> frozenset[int]:
    """LS numbers in a run's parquet file (only `ls_number` is read); empty when absent."""
    try:
        column = pq.read_table(path, columns=["ls_number"]).column("ls_number")
    except FileNotFoundError:
        return frozenset()
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path} is not a readable dialsflow parquet file ({exc}); delete it "
                         "and fetch that run again") from None
    return frozenset(column.to_pylist())
