"""`dialsflow export`: the seed's files, read by a pixelae-style loader under pandas (in a
subprocess, pandas stays out of the venv); and one duckdb / polars query over a whole tree."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dialsflow
from dialsflow.cli import main
from dialsflow.config.connections import DialsSettings
from dialsflow.config.runs import RunSelection
from dialsflow.pipeline.export import dialstools_schema, exported_runs
from dialsflow.store.layout import UnitKey, conditions_file, manifest_file, run_file, unit_dir
from dialsflow.store.manifest import Manifest

from ...clients import connection
from ...pandas_env import run_with_pandas

ZB = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
CHARGE = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"
DCC = "EcalBarrel/EBOccupancyTask/EBOT DCC entries"  # 1D, in the ecal workspace
BPIX = ("PixelPhase1/Phase1_MechanicalView/PXBarrel/digi_occupancy_per_SignedModuleCoord_per_"
        "SignedLadderCoord_PXLayer_1")

# pixelae's way (tools/iotools.py read_parquet, tools/dftools.py get_mes), file found by the
# seed's name; prints what it got for the test to compare.
LOADER = r"""
import sys, json, numpy as np, pandas as pd
folder, dataset, me, out = sys.argv[1:]
name = (dataset + '-' + me).strip('/').replace('/', '-') + '.parquet'
df = pd.read_parquet(folder + '/' + name)
if 'y_bin' in df.columns:
    xbins, ybins = int(df['x_bin'][0]), int(df['y_bin'][0])
    mes = np.array([np.stack(df['data'][i]).reshape(ybins, xbins) for i in range(len(df))])
else:
    mes = np.stack(df['data'].values)
np.save(out, mes)
print(json.dumps({"columns": list(df.columns), "runs": df['run_number'].tolist(),
                  "ls": df['ls_number'].tolist(), "entries": df['entries'].tolist()}))
"""


@pytest.fixture
def cli(capsys) -> Callable[..., SimpleNamespace]:
    """`dialsflow ARGS` in this process (main() as the console script calls it)."""
    def run(*args: str) -> SimpleNamespace:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return run


def key(me: str) -> UnitKey:
    return UnitKey("ecal" if me == DCC else "tracker", ZB, me)


@pytest.fixture(scope="module")
def tree(emulator, truth, tmp_path_factory) -> Path:
    """Two runs of a 1D and a 2D tracker ME and of a 1D ECAL ME fetched from the emulator,
    plus a conditions file."""
    ds = next(d for d in truth["datasets"] if d["dataset"] == ZB)
    runs = sorted(int(r) for r, v in ds["runs"].items() if v["in_dials"])[:2]
    out = tmp_path_factory.mktemp("tree")
    settings = DialsSettings.from_connection(connection(emulator, "dials_default"))
    report = dialsflow.fetch(replace(settings, workspace="tracker"), [ZB],
                             [f"^{BPIX}$", f"^{CHARGE}$"], out, runs=RunSelection.of(runs))
    assert not report.failed and len(report.written) == 4
    report = dialsflow.fetch(replace(settings, workspace="ecal"), [ZB], [f"^{DCC}$"], out,
                             runs=RunSelection.of(runs))
    assert not report.failed and len(report.written) == 2
    # a table beside the maps that the tree queries must not pick up
    path = conditions_file(out, runs[0])
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"run_number": [runs[0]], "ls_number": [1]}), path)
    return out


def source(out: Path, me: str) -> pa.Table:
    return pq.read_table(unit_dir(out, key(me)))


def test_pixelae_loader_reads_the_export_unchanged(tree, tmp_path, cli):
    exports = tmp_path / "exports"
    r = cli("export", str(tree), "--dataset", ZB, "--me", BPIX, "--me", CHARGE, "--to",
            str(exports), "--format", "dialstools")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("written (2 runs") == 2
    for me, dim, shape in ((BPIX, 2, (26, 72)), (CHARGE, 1, None)):
        src = source(tree, me)
        res = run_with_pandas(LOADER, str(exports), ZB, me, str(tmp_path / "maps.npy"))
        assert res.returncode == 0, res.stderr
        got = orjson.loads(res.stdout.splitlines()[-1])
        # the seed's columns (cmsdials' models, in their order), the source's rows
        assert got["columns"] == dialstools_schema(dim).names
        assert got["runs"] == src.column("run_number").to_pylist()
        assert got["ls"] == src.column("ls_number").to_pylist()
        assert got["entries"] == src.column("entries").to_pylist()
        flat = np.asarray(src.column("data").combine_chunks().values)
        expected = flat.reshape(src.num_rows, *(shape or (-1,)))
        assert np.array_equal(np.load(tmp_path / "maps.npy"), expected)
        path = exports / ((ZB + "-" + me).strip("/").replace("/", "-") + ".parquet")
        meta = pq.ParquetFile(path).metadata
        assert meta.num_row_groups == 2  # one per run
        assert exported_runs(path) == sorted(set(got["runs"]))
        assert pq.read_schema(path).field("x_bin").type == pa.float64()
    assert not [p for p in exports.iterdir() if p.name.startswith(".")]


def test_an_export_is_rewritten_only_when_the_unit_changed(tree, tmp_path, cli):
    exports = tmp_path / "exports"
    args = ("export", str(tree), "--dataset", "ZeroBias", "--me", "charge_PXLayer_1$",
            "--to", str(exports))
    assert cli(*args).returncode == 0
    path = next(exports.iterdir())
    before = path.stat().st_mtime_ns
    r = cli(*args)
    assert r.returncode == 0 and "up to date (2 runs" in r.stdout
    assert path.stat().st_mtime_ns == before
    run = Manifest(tree).complete_runs(key(CHARGE)).pop()
    entry = manifest_file(tree, key(CHARGE), run)
    os.utime(entry, ns=(before + 10**9, before + 10**9))  # re-ingested after the export
    r = cli(*args)
    assert "written (2 runs" in r.stdout and path.stat().st_mtime_ns > before
    r = cli(*args, "--runs", str(run))  # fewer runs: a different file
    assert "written (1 runs" in r.stdout and exported_runs(path) == [run]


def test_schema_v1_input_exports_the_same_file(tree, tmp_path, cli):
    old = tmp_path / "old"
    shutil.copytree(tree, old)
    manifest = Manifest(old)
    for run in manifest.complete_runs(key(BPIX)):  # as written before schema v2
        path = run_file(old, key(BPIX), run)
        t = pq.read_table(path)
        n, y, x = t.num_rows, t.column("y_bin")[0].as_py(), t.column("x_bin")[0].as_py()
        values = np.asarray(t.column("data").combine_chunks().values).reshape(n, y, x)
        cols = {c: t.column(c) for c in t.column_names if c != "data"}
        for c in ("x_bin", "y_bin"):
            cols[c] = cols[c].cast(pa.float64())
        cols["data"] = pa.array(values.tolist(), pa.list_(pa.list_(pa.float64())))
        pq.write_table(pa.table(cols), path)
        entry = manifest.get(key(BPIX), run)
        manifest.record(replace(entry, bytes=path.stat().st_size))
    for folder, out in ((tree, tmp_path / "new_export"), (old, tmp_path / "old_export")):
        assert cli("export", str(folder), "--dataset", ZB, "--me", BPIX, "--to",
                   str(out)).returncode == 0
    new, old_ = (pq.read_table(next(p.iterdir())) for p in (tmp_path / "new_export",
                                                            tmp_path / "old_export"))
    assert new.num_rows > 0 and new.equals(old_)


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "/NoSuch/"], "dataset pattern '/NoSuch/' matches nothing on disk"),
    (["--dataset", ZB, "--me", "charge_("], "ME 'charge_(' is neither a name on disk nor"),
    (["--dataset", ZB, "--runs", "1-2"], "nothing to export: no complete run in 1-2"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tree, tmp_path, cli, args,
                                                           message):
    r = cli("export", str(tree), *args, "--to", str(tmp_path / "exports"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "exports").exists()


def test_one_duckdb_and_one_polars_query_read_the_whole_tree(tree):
    """Two workspaces, 1D and 2D MEs."""
    maps = f"{tree}/*/*/*/run_*.parquet"  # workspace/dataset/ME/run: not _manifest, _conditions
    rows = duckdb.execute("SELECT me, count(*), sum(len(data)), min(y_bin) FROM read_parquet(?) "
                          "GROUP BY me ORDER BY me", [maps]).fetchall()
    expected = []
    for me in sorted((BPIX, CHARGE, DCC)):
        src = source(tree, me)
        expected.append((me, src.num_rows, len(src.column("data").combine_chunks().values),
                         26 if me == BPIX else None))
    assert rows == expected
    frame = (pl.scan_parquet(maps).group_by("me").agg(pl.len(), pl.col("data").list.len().sum())
             .sort("me").collect())
    assert frame.rows() == [row[:3] for row in expected]
