"""Schema v1 vs v2: conversion + write time and file size of one run file.

Rows come from the emulator's histogram generator (EB occupancy 360×170, BPix L1 72×26),
as orjson-parsed pages of about 2 MB of JSON, then go through `to_batch` and a ParquetWriter
with row groups of ~4 MB, as `ingest_run` does (parsing is not timed: it is the same for
both). v1 is `store/parquet.py` as of commit fb10ed0 (nested 2D data, double bins).

    .venv/bin/python bench/parquet_schema.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import types
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dialsflow.pipeline.ingest import ROW_GROUP_BYTES
from dialsflow.store import parquet as v2
from dialsflow_emulator.histograms import entries_for, histogram
from dialsflow_emulator.world.profiles import EB_OCCUPANCY, TRACKER_MES_BENCH

ROOT = Path(__file__).resolve().parents[1]
V1_COMMIT = "fb10ed0"
BPIX = next(m for m in TRACKER_MES_BENCH if m.x_bin == 72)


def load_v1() -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{V1_COMMIT}:plugins/dialsflow/store/parquet.py"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("parquet_v1")
    exec(compile(source, "parquet_v1.py", "exec"), module.__dict__)  # noqa: S102
    return module


def pages(me, n_ls: int, page_rows: int) -> list[bytes]:
    rows = [{"dataset_id": 1, "file_id": 1, "run_number": 380000, "ls_number": ls,
             "me_id": me.me_id, "x_min": me.x_min, "x_max": me.x_max, "x_bin": me.x_bin,
             "y_min": me.y_min, "y_max": me.y_max, "y_bin": me.y_bin,
             "entries": entries_for(1, 1, 380000, ls, me),
             "data": histogram(1, 1, 380000, ls, me).tolist()} for ls in range(1, n_ls + 1)]
    return [orjson.dumps(rows[i:i + page_rows]) for i in range(0, n_ls, page_rows)]


def write(path: Path, parsed: list[list[dict]], to_table, sch: pa.Schema, **options) -> float:
    t0 = time.perf_counter()
    with pq.ParquetWriter(path, sch, **options) as writer:
        pending: list[pa.RecordBatch] = []
        for page in parsed:
            pending.append(to_table(page))
            if sum(b.nbytes for b in pending) >= ROW_GROUP_BYTES:
                writer.write_table(pa.Table.from_batches(pending))
                pending = []
        if pending:
            writer.write_table(pa.Table.from_batches(pending))
    return time.perf_counter() - t0


def _timed(work) -> float:
    t0 = time.perf_counter()
    work()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    v1 = load_v1()
    # BYTE_STREAM_SPLIT only applies to a column without dictionary encoding (pyarrow's
    # default for every column, and what integer-valued counts compress best with).
    bss = {"use_byte_stream_split": ["data.list.element"],
           "use_dictionary": [n for n in v2.SCHEMA.names if n != "data"]}
    variants = {
        "v1 snappy (before)": ("v1", {"compression": "snappy"}),
        "v2 snappy": ("v2", {"compression": "snappy"}),
        "v2 snappy + BSS": ("v2", {"compression": "snappy", **bss}),
        "v2 zstd": ("v2", {"compression": "zstd"}),
        "v2 zstd + BSS": ("v2", {"compression": "zstd", **bss}),
    }
    print("| ME | LS | variant | MB | to_batch s | convert + write s | MB/s of values |")
    print("|---|---|---|---|---|---|---|")
    for me, n_ls, page_rows in ((EB_OCCUPANCY, 120, 6), (BPIX, 1200, 200)):
        parsed = [orjson.loads(b) for b in pages(me, n_ls, page_rows)]
        values_mb = n_ls * me.bins * 8 / 1e6
        label = f"{me.x_bin}×{me.y_bin}"
        with tempfile.TemporaryDirectory() as tmp:
            for name, (version, options) in variants.items():
                if version == "v1":
                    def conv(page, _me=me):
                        return v1.to_batch(page, 2, "/ZeroBias/X/DQMIO", _me.name)
                    sch = v1.schema(2)
                else:
                    def conv(page, _me=me):
                        return v2.to_batch(page, 2, "/ZeroBias/X/DQMIO", _me.name)
                    sch = v2.SCHEMA
                    options = {**options, "sorting_columns": v2.sorting_columns()}
                path = Path(tmp) / "run.parquet"
                best = min(write(path, parsed, conv, sch, **options)
                           for _ in range(args.repeat))
                size = path.stat().st_size / 1e6
                convert = min(_timed(lambda: [conv(page) for page in parsed])  # noqa: B023
                              for _ in range(args.repeat))
                print(f"| {label} | {n_ls} | {name} | {size:.2f} | {convert:.3f} | {best:.3f} | "
                      f"{values_mb / best:.0f} |", flush=True)


if __name__ == "__main__":
    main()
