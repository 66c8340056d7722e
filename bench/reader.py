"""`dialsflow.read` vs a bare pyarrow flatten: time and peak RSS for all runs of one ME.

Synthetic run files (the emulator's histogram generator, `to_batch` + `writer_options`, row
groups of ~4 MB as `ingest_run` writes them) go to a temporary OUTDIR laid out by
store/layout.py: BPix L1 occupancy 72×26 and EB occupancy 360×170. Each measurement runs in
its own Python process (peak RSS = that process's `ru_maxrss`, imports included, so both
sides pay the same ~constant base); times exclude imports. The files are read once before
measuring, so both sides read from the page cache.

    baseline: pyarrow.dataset.dataset(files).to_table(columns=["data"]), then
              np.asarray(t.column("data").combine_chunks().flatten()).reshape(n, y, x)
    reader:   dialsflow.read(outdir, dataset, me).values

    .venv/bin/python bench/reader.py [--repeat 3] [--eb-runs 6] [--eb-ls 150]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASET = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
WORKSPACE = "bench"


def write_runs(outdir: Path, me, runs: int, lumis: int) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dialsflow.pipeline.ingest import ROW_GROUP_BYTES
    from dialsflow.store import parquet as store
    from dialsflow.store.layout import UnitKey, run_file
    from dialsflow_emulator.histograms import entries_for, histogram

    key = UnitKey(WORKSPACE, DATASET, me.name)
    footer = store.footer_metadata(dataset_id=1, me_id=me.me_id, workspace=WORKSPACE,
                                   source_url="http://localhost/", dim=me.dim)
    paths = []
    for run in range(380000, 380000 + runs):
        path = run_file(outdir, key, run)
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(path, store.SCHEMA.with_metadata(footer),
                              **store.writer_options()) as writer:
            pending: list[pa.RecordBatch] = []
            for ls in range(1, lumis + 1):
                row = {"dataset_id": 1, "file_id": 1, "run_number": run, "ls_number": ls,
                       "me_id": me.me_id, "x_min": me.x_min, "x_max": me.x_max,
                       "x_bin": me.x_bin, "y_min": me.y_min, "y_max": me.y_max,
                       "y_bin": me.y_bin, "entries": entries_for(1, 1, run, ls, me),
                       "data": histogram(1, 1, run, ls, me)}
                pending.append(store.to_batch([row], me.dim, DATASET, me.name))
                if sum(b.nbytes for b in pending) >= ROW_GROUP_BYTES:
                    writer.write_table(pa.Table.from_batches(pending))
                    pending = []
            if pending:
                writer.write_table(pa.Table.from_batches(pending))
        paths.append(path)
    return paths


def measure(kind: str, outdir: str, me: str, shape: list[int]) -> None:
    """One measurement (in a fresh process): prints seconds, peak RSS and the result's shape."""
    import numpy as np
    import pyarrow.dataset as ds

    import dialsflow
    from dialsflow.store.layout import UnitKey, unit_dir

    files = sorted(str(p) for p in unit_dir(outdir, UnitKey(WORKSPACE, DATASET, me)).glob(
        "run_*.parquet"))
    read = dialsflow.read  # imports the reader (pyarrow.compute…): not part of a read
    t0 = time.perf_counter()
    if kind == "baseline":
        table = ds.dataset(files, format="parquet").to_table(columns=["data"])
        values = np.asarray(table.column("data").combine_chunks().flatten()).reshape(
            table.num_rows, *shape)
    else:
        values = read(outdir, DATASET, me).values
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss": peak, "shape": list(values.shape),
                      "checksum": float(values[:, ..., :3].sum())}))


def run_case(kind: str, outdir: Path, me, repeat: int) -> dict:
    shape = [me.y_bin, me.x_bin] if me.dim == 2 else [me.x_bin]
    results = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--measure", kind, str(outdir),
                              me.name, json.dumps(shape)], capture_output=True, text=True,
                             check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {"seconds": statistics.median(r["seconds"] for r in results),
            "peak_rss": statistics.median(r["peak_rss"] for r in results),
            "shape": results[0]["shape"], "checksum": results[0]["checksum"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--eb-runs", type=int, default=6)
    p.add_argument("--eb-ls", type=int, default=150)
    p.add_argument("--bpix-runs", type=int, default=10)
    p.add_argument("--bpix-ls", type=int, default=1000)
    p.add_argument("--measure", nargs=4, metavar=("KIND", "OUTDIR", "ME", "SHAPE"),
                   help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        kind, outdir, me, shape = args.measure
        measure(kind, outdir, me, json.loads(shape))
        return

    from dialsflow_emulator.world.profiles import EB_OCCUPANCY, TRACKER_MES_BENCH

    bpix = next(m for m in TRACKER_MES_BENCH if m.x_bin == 72 and m.y_bin == 26)
    cases = [("BPix 72×26", bpix, args.bpix_runs, args.bpix_ls),
             ("EB 360×170", EB_OCCUPANCY, args.eb_runs, args.eb_ls)]
    print("| ME | runs × LS | decoded MB | on disk MB | baseline s | reader s | time ratio | "
          "baseline peak MB | reader peak MB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="dialsflow-bench-reader-") as tmp:
        for label, me, runs, lumis in cases:
            outdir = Path(tmp, label.split()[0])
            paths = write_runs(outdir, me, runs, lumis)
            for path in paths:  # warm the page cache for both sides
                path.read_bytes()
            base = run_case("baseline", outdir, me, args.repeat)
            ours = run_case("read", outdir, me, args.repeat)
            assert base["shape"] == ours["shape"] and base["checksum"] == ours["checksum"]
            n = base["shape"][0]
            decoded = n * (me.x_bin * (me.y_bin if me.dim == 2 else 1)) * 8 / 1e6
            disk = sum(p.stat().st_size for p in paths) / 1e6
            print(f"| {label} | {runs} × {lumis} | {decoded:.0f} | {disk:.0f} | "
                  f"{base['seconds']:.3f} | {ours['seconds']:.3f} | "
                  f"{ours['seconds'] / base['seconds']:.2f} | {base['peak_rss'] / 1e6:.0f} | "
                  f"{ours['peak_rss'] / 1e6:.0f} | {ours['peak_rss'] / base['peak_rss']:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
