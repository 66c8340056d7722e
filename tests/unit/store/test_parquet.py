"""Pure functions of the ingestion path: rows → Arrow batch, page size from a run's weight."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dialsflow.pipeline.ingest import FIRST_PAGE_SIZE, TARGET_PAGE_BYTES, page_size_for
from dialsflow.store.parquet import schema, to_batch

ROW = {"dataset_id": 1, "file_id": 2, "run_number": 380000, "ls_number": 7, "me_id": 5,
       "x_min": -4.5, "x_max": 4.5, "x_bin": 2, "entries": 3}


def reference(rows: list[dict], dim: int, dataset: str, me: str) -> pa.RecordBatch:
    """What pyarrow's own conversion of the same Python values gives."""
    return pa.RecordBatch.from_pylist([{"dataset": dataset, "me": me, **r} for r in rows],
                                      schema=schema(dim))


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
    batch = to_batch(rows, dim, "/ZeroBias/Run2024C-PromptReco-v1/DQMIO", "Pixel/é")
    batch.validate(full=True)
    assert batch.equals(reference(rows, dim, "/ZeroBias/Run2024C-PromptReco-v1/DQMIO",
                                  "Pixel/é"))


def test_to_batch_keeps_nulls_as_pyarrow_does() -> None:
    rows = [{**ROW, "file_id": None, "data": [1.0, 2.0]}]
    assert to_batch(rows, 1, "d", "").equals(reference(rows, 1, "d", ""))


def test_page_size_for() -> None:
    assert page_size_for(0, 0, 2) == FIRST_PAGE_SIZE[2]
    assert page_size_for(100, 100 * 300_000, 2) == TARGET_PAGE_BYTES // 300_000
    assert page_size_for(100, 100 * 10, 1) == 500   # DIALS' cap
    assert page_size_for(1, 50 * TARGET_PAGE_BYTES, 2) == 1
