"""Pure functions of the ingestion path: rows → Arrow batch (schema v2), page size from a
run's weight; v1 files still read; a tree of 1D and 2D MEs reads in one query."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from dialsflow.pipeline.ingest import FIRST_PAGE_SIZE, TARGET_PAGE_BYTES, page_size_for
from dialsflow.store.layout import UnitKey, run_file
from dialsflow.store.parquet import (
    SCHEMA,
    file_metadata,
    footer_metadata,
    read_lumis,
    schema_version,
    sort_batches,
    sorting_columns,
    to_batch,
    writer_options,
)

ROW = {"dataset_id": 1, "file_id": 2, "run_number": 380000, "ls_number": 7, "me_id": 5,
       "x_min": -4.5, "x_max": 4.5, "x_bin": 2, "entries": 3}
ZB = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"


def flat(data: list) -> list:
    return [v for row in data for v in row] if data and isinstance(data[0], list) else data


def reference(rows: list[dict], dataset: str, me: str) -> pa.RecordBatch:
    """What pyarrow's own conversion of the same Python values gives, `data` flattened."""
    none = {"y_min": None, "y_max": None, "y_bin": None}
    return pa.RecordBatch.from_pylist(
        [{"dataset": dataset, "me": me, **none, **r, "data": flat(r["data"])} for r in rows],
        schema=SCHEMA)


@pytest.mark.parametrize(("dim", "datas"), [
    (1, [[1.0, 2.0], [3.0, 4.5]]),
    (1, [[1.0], [2.0, 3.0]]),            # ragged
    (1, [[], []]),                       # no bins
    (2, [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]),
    (2, [[[1.0], [2.0, 3.0]]]),          # ragged inner lists
    (2, [[]]),
])
def test_to_batch_equals_pyarrow_conversion(dim: int, datas: list) -> None:
    axes = {} if dim == 1 else {"y_min": 0.0, "y_max": 1.0, "y_bin": 2}
    rows = [{**ROW, **axes, "ls_number": i + 1, "data": d} for i, d in enumerate(datas)]
    batch = to_batch(rows, dim, ZB, "Pixel/é")
    batch.validate(full=True)
    assert batch.schema == SCHEMA
    assert batch.equals(reference(rows, ZB, "Pixel/é"))


def test_2d_data_is_row_major_y_then_x() -> None:
    grid = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)  # (n, y_bin, x_bin)
    rows = [{**ROW, "x_bin": 4, "y_min": 0.0, "y_max": 3.0, "y_bin": 3, "ls_number": i + 1,
             "data": grid[i].tolist()} for i in range(2)]
    batch = to_batch(rows, 2, ZB, "m")
    assert pa.types.is_list(batch.schema.field("data").type)
    assert batch.column("x_bin").type == batch.column("y_bin").type == pa.int64()
    values = np.asarray(batch.column("data").values).reshape(2, 3, 4)
    assert np.array_equal(values, grid)


def test_to_batch_keeps_nulls_as_pyarrow_does() -> None:
    rows = [{**ROW, "file_id": None, "data": [1.0, 2.0]}]
    assert to_batch(rows, 1, "d", "").equals(reference(rows, "d", ""))


def test_sort_batches_sorts_only_what_is_out_of_order() -> None:
    rows = [{**ROW, "run_number": run, "ls_number": ls, "data": [float(ls), 0.0]}
            for run, ls in ((380000, 3), (380000, 1), (379999, 9), (380000, 2))]
    table = sort_batches([to_batch(rows[:2], 1, ZB, "m"), to_batch(rows[2:], 1, ZB, "m")])
    assert list(zip(table.column("run_number").to_pylist(), table.column("ls_number").to_pylist(),
                    strict=True)) == [(379999, 9), (380000, 1), (380000, 2), (380000, 3)]
    assert [d[0] for d in table.column("data").to_pylist()] == [9.0, 1.0, 2.0, 3.0]
    ordered = [to_batch(sorted(rows, key=lambda r: (r["run_number"], r["ls_number"])), 1, ZB,
                        "m")]
    assert sort_batches(ordered).equals(pa.Table.from_batches(ordered))


def test_footer_metadata_has_no_credentials() -> None:
    meta = footer_metadata(dataset_id=1, me_id=5, workspace="tracker", dim=2,
                           source_url="https://u:secret@dials.example/api/v1/th2/?token=x",
                           certification="Cert_Collisions2024_378981_386951_Golden.json")
    assert meta["dialsflow.schema_version"] == "2"
    assert meta["dialsflow.source_url"] == "https://dials.example/api/v1/th2/"
    assert meta["dialsflow.certification"].startswith("Cert_")
    assert "dialsflow.certification" not in footer_metadata(
        dataset_id=1, me_id=5, workspace="tracker", dim=1, source_url="http://h/")


def write_v2(out: Path, me: str, dim: int, run: int, lumis: list[int]) -> Path:
    """A run file as `ingest_run` writes it."""
    axes = {} if dim == 1 else {"y_min": 0.0, "y_max": 3.0, "y_bin": 3}
    nx = 4
    rows = [{**ROW, **axes, "x_bin": nx, "run_number": run, "ls_number": ls,
             "data": [float(ls)] * nx if dim == 1 else [[float(ls)] * nx] * 3} for ls in lumis]
    path = run_file(out, UnitKey("tracker", ZB, me), run)
    path.parent.mkdir(parents=True)
    meta = footer_metadata(dataset_id=1, me_id=5, workspace="tracker", dim=dim,
                           source_url="http://h/api/v1/th1/")
    with pq.ParquetWriter(path, SCHEMA.with_metadata(meta), **writer_options()) as writer:
        writer.write_table(sort_batches([to_batch(rows, dim, ZB, me)]))
    return path


def test_one_dataset_query_reads_1d_and_2d_data(tmp_path: Path) -> None:
    one = write_v2(tmp_path, "charge", 1, 380001, [2, 1])
    two = write_v2(tmp_path, "map", 2, 380002, [1, 2, 3])
    tree = ds.dataset(tmp_path / "tracker", format="parquet")
    table = tree.to_table(columns=["me", "ls_number", "x_bin", "y_bin", "data"])
    assert table.num_rows == 5 and table.schema.field("data").type == pa.list_(pa.float64())
    lengths = {(me, ls): len(d) for me, ls, d in zip(*(table.column(c).to_pylist()
                                                       for c in ("me", "ls_number", "data")),
                                                     strict=True)}
    assert lengths == {("charge", 1): 4, ("charge", 2): 4, ("map", 1): 12, ("map", 2): 12,
                       ("map", 3): 12}
    assert set(table.column("y_bin").to_pylist()) == {None, 3}
    maps = pq.read_table(two)
    values = np.asarray(maps.column("data").combine_chunks().values)
    assert values.reshape(maps.num_rows, 3, 4)[:, 0, 0].tolist() == [1.0, 2.0, 3.0]
    for path in (one, two):
        assert pq.read_table(path).column("ls_number").to_pylist() == sorted(
            pq.read_table(path).column("ls_number").to_pylist())
        group = pq.ParquetFile(path).metadata.row_group(0)
        assert group.sorting_columns == tuple(sorting_columns())
        data = group.column(SCHEMA.get_field_index("data"))
        assert data.compression == "ZSTD" and "BYTE_STREAM_SPLIT" in data.encodings
        assert schema_version(path) == 2 and file_metadata(path)["dialsflow.me_id"] == "5"


def test_v1_files_still_read(tmp_path: Path) -> None:
    """Files of the previous version: nested 2D data, double bins, no footer key."""
    v1 = pa.schema([("dataset", pa.string()), ("me", pa.string()), ("run_number", pa.int64()),
                    ("ls_number", pa.int64()), ("x_bin", pa.float64()), ("y_bin", pa.float64()),
                    ("data", pa.list_(pa.list_(pa.float64())))])
    path = tmp_path / "run_380000.parquet"
    pq.write_table(pa.Table.from_pylist(
        [{"dataset": ZB, "me": "m", "run_number": 380000, "ls_number": ls, "x_bin": 2.0,
          "y_bin": 1.0, "data": [[1.0, 2.0]]} for ls in (1, 2)], schema=v1), path)
    assert read_lumis(path) == {1, 2}
    assert schema_version(path) == 1 and file_metadata(path) == {}


def test_page_size_for() -> None:
    assert page_size_for(0, 0, 2) == FIRST_PAGE_SIZE[2]
    assert page_size_for(100, 100 * 300_000, 2) == TARGET_PAGE_BYTES // 300_000
    assert page_size_for(100, 100 * 10, 1) == 500   # DIALS' cap
    assert page_size_for(1, 50 * TARGET_PAGE_BYTES, 2) == 1
