"""`make demo` as a user meets it: one night, then the next morning's one call.

Runs `python -m localdev.demo` (what `make demo` runs) into a temporary home and output,
then reads the BPix layer-1 map of the Golden lumisections with `dialsflow.read` and checks
it against what the unmodified cmsdials client returns from the same world, and the OMS
conditions beside it against OMS itself (omsapi through our client).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from cmsdials import Dials
from cmsdials.filters import LumisectionHistogram2DFilters

import dialsflow
from dialsflow_emulator.process import EmulatorProcess
from localdev.airflow_home import ROOT
from localdev.demo import NIGHT

from ..clients import caf_client
from ..emulator.test_dials_cmsdials import credentials

BPIX_L1 = ("PixelPhase1/Phase1_MechanicalView/PXBarrel/"
           "digi_occupancy_per_SignedModuleCoord_per_SignedLadderCoord_PXLayer_1")
DATASET = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
CONDITIONS = ("pileup", "recorded_lumi_per_lumisection", "beams_stable", "bpix_ready",
              "fpix_ready")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("demo")
    out = subprocess.run([sys.executable, "-m", "localdev.demo", "--home", str(base / "home"),
                          "--output", str(base / "out")], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return base / "out", out.stdout


@pytest.fixture(scope="module")
def world() -> EmulatorProcess:
    with EmulatorProcess("--now", NIGHT) as emu:
        yield emu


def test_the_morning_after_is_one_call(demo: tuple[Path, str], world: EmulatorProcess) -> None:
    root, stdout = demo
    outdir = root / "demo_tracker"
    got = dialsflow.read(outdir, DATASET, BPIX_L1, certified="golden", conditions=CONDITIONS)
    n = len(got.ls_number)
    assert got.values.shape == (n, 26, 72) and n > 100

    # Exactly the Golden LS of the runs on disk: the certification in force, per LS.
    with caf_client(world) as caf:
        golden = caf.current()
    runs = sorted(set(got.run_number.tolist()))
    on_disk = dialsflow.read(outdir, DATASET, BPIX_L1)
    for run in sorted(set(on_disk.run_number.tolist())):
        mine = got.ls_number[got.run_number == run]
        wanted = {ls for lo, hi in golden.ranges(run) for ls in range(lo, hi + 1)}
        have = set(on_disk.ls_number[on_disk.run_number == run].tolist())
        assert set(mine.tolist()) == wanted & have, run
    assert len(on_disk.ls_number) > n  # the golden filter did drop LS

    # Values equal to what cmsdials returns for those LS.
    dials = Dials(credentials(world), workspace="tracker", base_url=world.url + "/")
    for run in runs:
        rows = dials.h2d.list_all(LumisectionHistogram2DFilters(
            dataset=DATASET, me=BPIX_L1, run_number=run), enable_progress=False).results
        theirs = {r.ls_number: np.asarray(r.data, dtype=np.float64) for r in rows}
        sel = np.flatnonzero(got.run_number == run)
        for i in sel:
            np.testing.assert_array_equal(got.values[i], theirs[int(got.ls_number[i])])

    # Conditions beside every one of them.
    cond = got.conditions
    assert cond.num_rows == n and set(CONDITIONS) <= set(cond.column_names)
    for name in CONDITIONS:
        assert cond.column(name).null_count == 0, name
    for flag in ("beams_stable", "bpix_ready", "fpix_ready"):
        assert all(cond.column(flag).to_pylist()), flag  # Golden LS: pixels on, beams stable
    assert "dialsflow.read(" in stdout  # the demo tells how


def test_one_duckdb_query_reads_the_whole_tree(demo: tuple[Path, str]) -> None:
    """Every ME of both demo jobs, 1D and 2D, in one query over one schema; the per-LS
    tables beside them (`_conditions`, `_certification`) are not matched."""
    root, _ = demo
    files = f"{root}/*/*/*/*/run_*.parquet"
    rows = duckdb.execute(
        "SELECT me, y_bin IS NULL AS one_d, count(*) AS n, sum(len(data)) AS values, "
        "bool_and(len(data) = x_bin * coalesce(y_bin, 1)) AS shaped "
        "FROM read_parquet(?) GROUP BY ALL ORDER BY me", [files]).fetchall()
    on_disk = {p.parent.name for p in root.glob("*/*/*/*/run_*.parquet")}
    assert len(rows) == len(on_disk) == 4
    assert {one_d for _, one_d, *_ in rows} == {True, False}
    assert all(n > 100 and values > n and shaped for _, _, n, values, shaped in rows)
