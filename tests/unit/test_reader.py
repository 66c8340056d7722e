"""`dialsflow.read` / `read_many` on files `dialsflow.fetch` wrote from the emulator: values
equal to what unmodified cmsdials returns, LS certification, conditions aligned, filters,
batches, schema v1 files, and one clear line for every bad input."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from cmsdials import Dials
from cmsdials.auth.client import AuthClient
from cmsdials.auth.client_credentials import Credentials
from cmsdials.filters import LumisectionHistogram1DFilters, LumisectionHistogram2DFilters

import dialsflow
from dialsflow.config.connections import DialsSettings
from dialsflow.config.runs import RunSelection
from dialsflow.errors import InputError
from dialsflow.pipeline.certification import refresh_certification
from dialsflow.store.layout import UnitKey, conditions_file, run_file, unit_dir

from ..clients import caf_client, connection

ZB = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
CHARGE = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"
BPIX = ("PixelPhase1/Phase1_MechanicalView/PXBarrel/digi_occupancy_per_SignedModuleCoord_per_"
        "SignedLadderCoord_PXLayer_1")
COND = ("pileup", "recorded_lumi_per_lumisection", "beams_stable", "bpix_ready")


def _runs(truth: dict) -> list[int]:
    """Three golden runs with maps in DIALS and one DIALS has but Golden does not."""
    golden = {int(r) for r in truth["certification"]["golden_runs"]}
    ds = next(d for d in truth["datasets"] if d["dataset"] == ZB)
    in_dials = sorted(int(r) for r, v in ds["runs"].items() if v["in_dials"])
    return sorted([r for r in in_dials if r in golden][:3]
                  + [r for r in in_dials if r not in golden][:1])


def _conditions(run: int, lumis: list[int]) -> pa.Table:
    """A per-run conditions table as formats §1 lays it out (a subset of its columns)."""
    n = len(lumis)
    ls = np.asarray(lumis, dtype=np.int64)
    pileup = [None if i == 1 else 20.0 + (run % 7) + 0.25 * x for i, x in enumerate(lumis)]
    return pa.table({
        "run_number": pa.array(np.full(n, run, np.int64)), "ls_number": pa.array(ls),
        "fill_number": pa.array(np.full(n, 9000 + run % 100, np.int64)),
        "pileup": pa.array(pileup, pa.float64()),
        "recorded_lumi_per_lumisection": pa.array(ls * 0.001 + run % 3),
        "beams_stable": pa.array(ls % 5 != 0), "cms_active": pa.array(np.ones(n, bool)),
        "bpix_ready": pa.array(ls % 4 != 0),
        "hlt_rate_HLT_ZeroBias": pa.array(ls * 10.0),
    })


def _lumis(run: int, runs: list[int]) -> list[int]:
    """The LS the test gives conditions for: none for runs[3], all but LS 2 for runs[0]."""
    if run == runs[3]:
        return []
    return [ls for ls in range(1, 200) if not (run == runs[0] and ls == 2)]


def _expected_conditions(run: int, ls: int, runs: list[int]) -> dict | None:
    """What the test wrote for (run, ls); None where no row was written."""
    rows = _conditions(run, _lumis(run, runs)).to_pylist()
    return next((r for r in rows if r["ls_number"] == ls), None)


@pytest.fixture(scope="module")
def tree(emulator, truth, tmp_path_factory) -> tuple[Path, list[int]]:
    """Two MEs (1D, 2D) of four runs fetched from the emulator, the LS certification of the
    emulator's CAF, and conditions for three runs (run 0 lacks LS 2, run 3 has no file)."""
    runs = _runs(truth)
    out = tmp_path_factory.mktemp("reader") / "out"
    settings = DialsSettings.from_connection(connection(emulator, "dials_default"))
    report = dialsflow.fetch(replace(settings, workspace="tracker"), [ZB], [CHARGE, BPIX], out,
                             runs=RunSelection.of(runs))
    assert not report.failed and len(report.written) == 8
    with caf_client(emulator) as g, caf_client(emulator, kind="dcs", energy="13p6TeV") as d:
        refresh_certification(out, g.current(), d.current())
    for run in runs[:3]:
        path = conditions_file(out, run)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_conditions(run, _lumis(run, runs)), path)
    return out, runs


@pytest.fixture(scope="module")
def theirs(emulator, tree) -> dict[str, dict[tuple[int, int], tuple[np.ndarray, int]]]:
    """(run, ls) → (data, entries) per ME, as unmodified cmsdials returns them."""
    _, runs = tree
    conn = emulator.connections()["dials_default"]
    creds = Credentials(conn["login"], conn["password"],
                        client=AuthClient(keycloak_url=emulator.url + "/auth/"))
    dials = Dials(creds, workspace="tracker", base_url=emulator.url + "/")
    out = {}
    for me, client, filters in ((CHARGE, dials.h1d, LumisectionHistogram1DFilters),
                                (BPIX, dials.h2d, LumisectionHistogram2DFilters)):
        out[me] = {(r.run_number, r.ls_number): (np.asarray(r.data, dtype=np.float64),
                                                 r.entries)
                   for run in runs for r in client.list_all(
                       filters(dataset=ZB, me=me, run_number=run, page_size=500)).results}
    return out


def _golden(truth: dict, run: int, ls: int) -> bool:
    return any(a <= ls <= b for a, b in truth["certification"]["golden_runs"].get(str(run), []))


def _assert_like_cmsdials(m, rows: dict) -> None:
    keys = list(zip(m.run_number.tolist(), m.ls_number.tolist(), strict=True))
    assert keys == sorted(keys) and len(m) == len(keys) > 0
    for i, key in enumerate(keys):
        data, entries = rows[key]
        assert np.array_equal(m.values[i], data) and m.entries[i] == entries


def test_golden_2d_maps_equal_cmsdials_with_conditions_aligned(tree, theirs, truth):
    out, runs = tree
    m = dialsflow.read(out, ZB, BPIX, certified="golden", conditions=COND)
    assert m.values.shape == (len(m), 26, 72) and m.values.dtype == np.float64
    assert m.shape == (26, 72) and m.workspace == "tracker"
    want = sorted(k for k in theirs[BPIX] if _golden(truth, *k))
    assert list(zip(m.run_number.tolist(), m.ls_number.tolist(), strict=True)) == want
    assert runs[3] not in m.run_number  # not in the Golden JSON
    _assert_like_cmsdials(m, theirs[BPIX])
    assert m.conditions.column_names == list(COND) and m.conditions.num_rows == len(m)
    for (run, ls), row in zip(want, m.conditions.to_pylist(), strict=True):
        expected = _expected_conditions(run, ls, runs)
        assert row == ({c: expected[c] for c in COND} if expected else dict.fromkeys(COND))
    # the LS without an OMS row and the OMS null are both in the selection, as nulls
    assert m.conditions.column("pileup").null_count >= 2


def test_1d_every_run_min_entries_and_dcs(tree, theirs, truth):
    out, runs = tree
    m = dialsflow.read(out, ZB, CHARGE)
    assert m.values.shape == (len(theirs[CHARGE]), 100) and m.conditions.num_rows == len(m)
    assert m.conditions.num_columns == 0
    _assert_like_cmsdials(m, theirs[CHARGE])
    floor = int(np.median(m.entries))
    busy = dialsflow.read(out, ZB, CHARGE, min_entries=floor, runs=f"{runs[0]}-{runs[2]}")
    assert len(busy) == sum(1 for (r, _), (_, e) in theirs[CHARGE].items()
                            if e >= floor and r <= runs[2]) > 0
    _assert_like_cmsdials(busy, theirs[CHARGE])
    dcs = dialsflow.read(out, ZB, CHARGE, certified="dcs", runs=[runs[3]])
    table = pq.read_table(out / "_certification" / "lumis.parquet")
    flagged = {(r["run_number"], r["ls_number"]) for r in table.to_pylist()
               if r["dcs"] and r["run_number"] == runs[3]}
    assert set(zip(dcs.run_number.tolist(), dcs.ls_number.tolist(), strict=True)) == \
        flagged & set(theirs[CHARGE])


def test_where_over_keys_entries_and_conditions(tree, theirs):
    out, runs = tree
    every = dialsflow.read(out, ZB, BPIX, conditions=("pileup", "beams_stable"))
    cut = float(np.nanmedian(every.conditions.column("pileup").to_numpy(zero_copy_only=False)
                             .astype(float)))
    where = (pc.field("pileup") > cut) & pc.field("beams_stable") & (pc.field("ls_number") > 3)
    m = dialsflow.read(out, ZB, BPIX, where=where, conditions=("pileup",))
    rows = every.conditions.to_pylist()
    want = [(r, ls) for r, ls, c in zip(every.run_number.tolist(), every.ls_number.tolist(),
                                        rows, strict=True)
            if c["pileup"] is not None and c["pileup"] > cut and c["beams_stable"] and ls > 3]
    assert list(zip(m.run_number.tolist(), m.ls_number.tolist(), strict=True)) == want
    assert len(want) > 0 and all(p > cut for p in m.conditions.column("pileup").to_pylist())
    _assert_like_cmsdials(m, theirs[BPIX])
    # `where` may name the key columns and entries alone
    one = dialsflow.read(out, ZB, BPIX, where=(pc.field("run_number") == runs[1])
                         & (pc.field("entries") > 0))
    assert set(one.run_number.tolist()) == {runs[1]} and (one.entries > 0).all()


def test_iter_batches_stream_the_same_maps(tree):
    out, _ = tree
    m = dialsflow.read(out, ZB, BPIX, conditions=("pileup",))
    parts = list(m.iter_batches(17))  # before .values: streamed from disk
    assert [len(p) for p in parts[:-1]] == [17] * (len(parts) - 1) and 0 < len(parts[-1]) <= 17
    assert np.array_equal(np.concatenate([p.values for p in parts]), m.values)
    assert np.array_equal(np.concatenate([p.ls_number for p in parts]), m.ls_number)
    assert pa.concat_tables([p.conditions for p in parts]).equals(m.conditions)
    again = list(m.iter_batches(1000))  # after: slices of the loaded array
    assert len(again) == 1 and np.array_equal(again[0].values, m.values)


def test_large_row_groups_are_read_in_batches(tree, monkeypatch):
    """Row groups larger than GROUP_BYTES stream in batches of about BATCH_BYTES; the
    maps, and a selection within them, are the same."""
    out, _ = tree
    every = dialsflow.read(out, ZB, BPIX)
    holes = ~pc.field("ls_number").isin([2, 5, 9, 10])
    some = dialsflow.read(out, ZB, BPIX, where=holes)
    assert 3 < len(some) < len(every)
    expected = every.values, some.values  # loaded now, whole row groups at once
    monkeypatch.setattr(dialsflow.reader, "GROUP_BYTES", 0)
    monkeypatch.setattr(dialsflow.reader, "BATCH_BYTES", 3 * 26 * 72 * 8)  # 3 maps a batch
    assert np.array_equal(dialsflow.read(out, ZB, BPIX).values, expected[0])
    assert np.array_equal(dialsflow.read(out, ZB, BPIX, where=holes).values, expected[1])


def test_read_many_aligns_mes_on_common_lumisections(tree, tmp_path, theirs):
    out, runs = tree
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    key = UnitKey("tracker", ZB, CHARGE)
    path = run_file(copy, key, runs[1])
    table = pq.read_table(path)
    dropped = table.column("ls_number").to_pylist()[::3]
    pq.write_table(table.filter(pc.invert(pc.is_in(table.column("ls_number"),
                                                   pa.array(dropped)))), path)
    both = dialsflow.read_many(copy, ZB, [BPIX, CHARGE], certified="golden",
                               conditions=("pileup",))
    assert both.mes == [BPIX, CHARGE] and len(both) > 0
    keys = list(zip(both.run_number.tolist(), both.ls_number.tolist(), strict=True))
    assert not {(runs[1], ls) for ls in dropped} & set(keys)
    for me in both.mes:
        assert np.array_equal(both[me].run_number, both.run_number)
        assert np.array_equal(both[me].ls_number, both.ls_number)
        _assert_like_cmsdials(both[me], theirs[me])
    assert both[BPIX].values.shape == (len(both), 26, 72)
    assert both[CHARGE].values.shape == (len(both), 100)
    assert both.conditions.num_rows == len(both)
    batches = list(both.iter_batches(10))
    assert np.array_equal(np.concatenate([b[CHARGE].values for b in batches]),
                          both[CHARGE].values)


def _as_v1(path: Path, target: Path) -> None:
    """A run file as dialsflow wrote it before schema v2: double bins, no y_* columns in 1D
    files, list<list<double>> data for 2D, no footer version key."""
    t = pq.read_table(path)
    two_d = t.column("y_bin").null_count == 0
    columns = {}
    for name in t.column_names:
        column = t.column(name)
        if name.startswith("y_") and not two_d:
            continue
        if name in ("x_bin", "y_bin"):
            column = column.cast(pa.float64())
        if name == "data" and two_d:
            y, x = t.column("y_bin")[0].as_py(), t.column("x_bin")[0].as_py()
            column = pa.array([np.asarray(v).reshape(y, x).tolist() for v in column.to_pylist()],
                              pa.list_(pa.list_(pa.float64())))
        columns[name] = column
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), target)


def test_schema_v1_files_read_the_same(tree, tmp_path):
    out, runs = tree
    old = tmp_path / "v1"
    for me in (CHARGE, BPIX):
        key = UnitKey("tracker", ZB, me)
        for run in runs:
            _as_v1(run_file(out, key, run), run_file(old, key, run))
        new = dialsflow.read(out, ZB, me)
        got = dialsflow.read(old, ZB, me)
        assert got.values.shape == new.values.shape and np.array_equal(got.values, new.values)
        assert np.array_equal(got.entries, new.entries)
    assert pq.read_schema(run_file(old, UnitKey("tracker", ZB, BPIX), runs[0])).field(
        "data").type == pa.list_(pa.list_(pa.float64()))


def test_every_bad_input_is_one_clear_line(tree, tmp_path):
    out, _ = tree
    bare = tmp_path / "bare"
    shutil.copytree(unit_dir(out, UnitKey("tracker", ZB, CHARGE)),
                    unit_dir(bare, UnitKey("tracker", ZB, CHARGE)))
    twice = tmp_path / "twice"
    for ws in ("tracker", "other"):
        shutil.copytree(unit_dir(out, UnitKey("tracker", ZB, CHARGE)),
                        unit_dir(twice, UnitKey(ws, ZB, CHARGE)))
    cases = [
        (lambda: dialsflow.read(tmp_path / "none", ZB, CHARGE), "does not exist"),
        (lambda: dialsflow.read(out, "/Nope/X/DQMIO", CHARGE), f"no dataset '/Nope/X/DQMIO' "
                                                                f"under {out}; there are: {ZB}"),
        (lambda: dialsflow.read(out, ZB, "Pixel/nope"), f"no ME 'Pixel/nope' for {ZB}"),
        (lambda: dialsflow.read(out, ZB, CHARGE, workspace="csc"), "no workspace 'csc'"),
        (lambda: dialsflow.read(twice, ZB, CHARGE), "several workspaces under"),
        (lambda: dialsflow.read(bare, ZB, CHARGE, certified="golden"),
         "run dialsflow certification -o"),
        (lambda: dialsflow.read(out, ZB, CHARGE, certified="muon"), "choose None, 'golden'"),
        (lambda: dialsflow.read(out, ZB, CHARGE, conditions=("pileup", "lumi")),
         "no conditions column 'lumi'"),
        (lambda: dialsflow.read(bare, ZB, CHARGE, conditions=("pileup",)),
         "run dialsflow conditions -o"),
        (lambda: dialsflow.read(out, ZB, CHARGE, where="pileup > 25"),
         "where must be a pyarrow.compute Expression"),
        (lambda: dialsflow.read(out, ZB, CHARGE, where=pc.field("pu") > 25), "where="),
        (lambda: dialsflow.read(out, ZB, CHARGE, runs=["x"]), "runs=['x']"),
        (lambda: dialsflow.read(out, ZB, CHARGE, runs="10-1"), "--runs '10-1'"),
        (lambda: list(dialsflow.read(out, ZB, CHARGE).iter_batches(0)), "at least 1"),
        (lambda: dialsflow.read_many(out, ZB, []), "at least one ME"),
    ]
    for call, message in cases:
        with pytest.raises(InputError) as info:
            call()
        text = str(info.value)
        assert message in text and "\n" not in text, (message, text)
    unknown = pytest.raises(InputError, match="columns: run_number, ls_number, entries, "
                                              "fill_number, pileup")
    with unknown:
        dialsflow.read(out, ZB, CHARGE, where=pc.field("pu") > 25)
    # without conditions on disk, `where` still takes the key columns and entries
    assert len(dialsflow.read(bare, ZB, CHARGE, where=pc.field("ls_number") > 1)) > 0
    with pytest.raises(InputError, match=r"columns: run_number, ls_number, entries$"):
        dialsflow.read(bare, ZB, CHARGE, where=pc.field("pileup") > 25)
