"""`dialsflow fetch` against the emulator, compared with what unmodified cmsdials returns;
ingesting from a DIALS that is too slow for large pages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from cmsdials import Dials
from cmsdials.auth.client import AuthClient
from cmsdials.auth.client_credentials import Credentials
from cmsdials.filters import LumisectionHistogram1DFilters, LumisectionHistogram2DFilters

from dialsflow.pipeline.ingest import ingest_units
from dialsflow.pipeline.units import Unit
from dialsflow.store.layout import UnitKey, run_file, unit_dir
from dialsflow.store.manifest import Manifest, file_sha256
from dialsflow.store.parquet import file_metadata, sorting_columns
from dialsflow_emulator.process import EmulatorProcess

from ..services.test_dials import PageServer, slower_than
from ..services.test_dials import client as dials_client

BIN = Path(sys.executable).parent
ZB = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
CHARGE = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"
BPIX = ("PixelPhase1/Phase1_MechanicalView/PXBarrel/digi_occupancy_per_SignedModuleCoord_per_"
        "SignedLadderCoord_PXLayer_1")


def write_json(path: Path, value: object) -> Path:
    path.write_bytes(orjson.dumps(value))
    return path


def env_for(emu: EmulatorProcess, **conn_overrides: object) -> dict[str, str]:
    conn = emu.connections()["dials_default"]
    conn.update(conn_overrides)
    return {**os.environ, "AIRFLOW_CONN_DIALS_DEFAULT": orjson.dumps(conn).decode()}


def dialsflow(args: list[str], env: dict[str, str],
              timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dialsflow"), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def runs_in_dials(truth: dict, dataset: str) -> list[int]:
    ds = next(d for d in truth["datasets"] if d["dataset"] == dataset)
    return sorted(int(r) for r, v in ds["runs"].items() if v["in_dials"])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    return {
        "zb": write_json(d / "datasets.json", [ZB]),
        "mixed": write_json(d / "mes_mixed.json",
                            ["charge_PXLayer_1$", "digi_occupancy_.*_PXLayer_1"]),
        "bpix": write_json(d / "mes_bpix.json", [BPIX]),
        "charge": write_json(d / "mes_charge.json", [CHARGE]),
    }


def test_output_equals_cmsdials_list_all_row_for_row(emulator, truth, inputs, tmp_path):
    runs = runs_in_dials(truth, ZB)[:3]
    out = tmp_path / "out"
    r = dialsflow(["fetch", "-d", str(inputs["zb"]), "-m", str(inputs["mixed"]), "-o", str(out),
                   "--runs", ",".join(map(str, runs))], env_for(emulator))
    assert r.returncode == 0, r.stderr
    conn = emulator.connections()["dials_default"]
    creds = Credentials(conn["login"], conn["password"],
                        client=AuthClient(keycloak_url=emulator.url + "/auth/"))
    dials = Dials(creds, workspace="tracker", base_url=emulator.url + "/")
    for me, client, filters in ((CHARGE, dials.h1d, LumisectionHistogram1DFilters),
                                (BPIX, dials.h2d, LumisectionHistogram2DFilters)):
        # cmsdials' rows exactly as its to_pandas() builds its DataFrame (`res.__dict__`)
        rows = [dict(r.__dict__) for run in runs
                for r in client.list_all(filters(dataset=ZB, me=me, run_number=run,
                                                 page_size=500)).results]
        theirs = {column: [r[column] for r in rows] for column in rows[0]}
        table = pq.read_table(unit_dir(out, _key(me))).sort_by(
            [("run_number", "ascending"), ("ls_number", "ascending")])
        ours = table.to_pydict()
        extra = [] if me == BPIX else ["y_min", "y_max", "y_bin"]  # null for 1D MEs
        assert [c for c in ours if c not in extra] == list(theirs)
        assert all(ours[c] == [None] * len(rows) for c in extra)
        assert table.num_rows == len(rows) > 0
        for column in theirs:
            if column == "data":  # schema v2: cmsdials' nested 2D rows, flattened y then x
                for a, b in zip(ours[column], theirs[column], strict=True):
                    assert np.array_equal(np.asarray(a), np.asarray(b).reshape(-1))
            else:
                assert ours[column] == theirs[column], column
    maps = pq.read_table(unit_dir(out, _key(BPIX)))
    stacked = np.asarray(maps.column("data").combine_chunks().values).reshape(
        maps.num_rows, maps.column("y_bin")[0].as_py(), maps.column("x_bin")[0].as_py())
    assert stacked.shape[1:] == (26, 72)
    # One query over the whole tree, 1D and 2D MEs alike; files sorted and described.
    tree = ds.dataset(out / "tracker", format="parquet").to_table(
        columns=["me", "run_number", "ls_number", "data"])
    assert set(tree.column("me").to_pylist()) == {CHARGE, BPIX}
    assert tree.num_rows == sum(pq.read_metadata(p).num_rows for p in out.rglob("run_*.parquet"))
    for path in out.rglob("run_*.parquet"):
        ls = pq.read_table(path, columns=["ls_number"]).column("ls_number").to_pylist()
        assert ls == sorted(ls)
        meta = pq.ParquetFile(path).metadata
        assert all(meta.row_group(i).sorting_columns == tuple(sorting_columns())
                   for i in range(meta.num_row_groups))
        footer = file_metadata(path)
        assert footer["dialsflow.schema_version"] == "2"
        assert footer["dialsflow.workspace"] == "tracker"
        assert footer["dialsflow.source_url"].startswith(emulator.url)
        assert footer["dialsflow.me_id"].isdigit() and footer["dialsflow.dataset_id"].isdigit()


def _key(me: str):
    from dialsflow.store.layout import UnitKey

    return UnitKey("tracker", ZB, me)


def test_h1d_given_a_2d_me_fails_clearly(emulator, inputs, tmp_path):
    r = dialsflow(["fetch", "-d", str(inputs["zb"]), "-m", str(inputs["bpix"]), "-t", "h1d",
                   "-o", str(tmp_path / "out")], env_for(emulator))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"dialsflow: error: ME {BPIX!r} is 2D (h2d) but -t h1d was given: use -t auto or -t h2d"]
    assert not list((tmp_path / "out").rglob("*.parquet"))


def test_resubmit_fetches_only_what_is_missing(emulator, truth, inputs, tmp_path):
    runs = runs_in_dials(truth, ZB)[:6]
    out = tmp_path / "out"
    env = env_for(emulator)
    first = dialsflow(["fetch", "-d", str(inputs["zb"]), "-m", str(inputs["charge"]), "-o",
                       str(out), "--runs", ",".join(map(str, runs[:4]))], env)
    assert first.returncode == 0, first.stderr
    manifest = Manifest(out)
    # An interrupted run: one entry lost (as if killed between file and entry).
    manifest.forget(_key(CHARGE), runs[0])
    before = {run: manifest.get(_key(CHARGE), run) for run in runs[1:4]}
    emulator.reset_stats()
    again = dialsflow(["fetch", "-d", str(inputs["zb"]), "-m", str(inputs["charge"]), "-o",
                       str(out), "--runs", ",".join(map(str, runs)), "--resubmit"], env)
    assert again.returncode == 0, again.stderr
    assert "3 runs written, 3 skipped as complete" in again.stdout
    assert {run: manifest.get(_key(CHARGE), run) for run in runs[1:4]} == before
    assert all(manifest.is_complete(_key(CHARGE), run) for run in runs)
    # One th1 request per fetched run (small runs fit a page), none for skipped ones.
    assert emulator.stats()["requests"]["/api/v1/th1/"] == 3


def test_test_mode_is_truncated_and_not_complete(emulator, truth, inputs, tmp_path):
    run = max(runs_in_dials(truth, ZB), key=lambda n: next(
        r["n_ls"] for r in truth["runs"] if r["run_number"] == n))
    out = tmp_path / "out"
    r = dialsflow(["fetch", "-d", str(inputs["zb"]), "-m", str(inputs["bpix"]), "-o", str(out),
                   "--runs", str(run), "--test"], env_for(emulator))
    assert r.returncode == 0, r.stderr
    entry = Manifest(out).get(_key(BPIX), run)
    assert entry is not None and not entry.complete and entry.rows > 0
    assert not Manifest(out).is_complete(_key(BPIX), run)


def _tables(out: Path, me: str) -> dict[int, object]:
    files = sorted(unit_dir(out, _key(me)).glob("run_*.parquet"))
    return {int(f.stem[4:]): pq.read_table(f) for f in files}


def test_faults_and_short_tokens_give_the_clean_output(truth, inputs, tmp_path):
    runs = ",".join(map(str, runs_in_dials(truth, ZB)[:16]))
    args = ["fetch", "-d", str(inputs["zb"]), "-m", str(inputs["mixed"]), "--runs", runs,
            "--concurrency", "1"]
    with EmulatorProcess() as clean:
        assert dialsflow([*args, "-o", str(tmp_path / "clean")], env_for(clean)).returncode == 0
    with EmulatorProcess("--fault-rate", "0.2", "--token-ttl", "5", "--latency-ms", "150") as emu:
        t0 = time.monotonic()
        r = dialsflow([*args, "-o", str(tmp_path / "faulty")], env_for(emu))
        took = time.monotonic() - t0
        stats = emu.stats()
    assert r.returncode == 0, r.stderr
    assert sum(stats["faults"].values()) > 0
    assert took > 5  # the token expired during the run...
    assert stats["requests"]["/auth/realms/cern/api-access/token"] >= 2  # ...and was renewed
    for me in (CHARGE, BPIX):
        clean_t, faulty_t = _tables(tmp_path / "clean", me), _tables(tmp_path / "faulty", me)
        assert clean_t.keys() == faulty_t.keys() and clean_t
        assert all(clean_t[k].equals(faulty_t[k]) for k in clean_t)


def test_sigkill_mid_write_leaves_nothing_that_looks_complete(truth, inputs, tmp_path):
    out = tmp_path / "out"
    runs = runs_in_dials(truth, ZB)
    args = ["fetch", "-d", str(inputs["zb"]), "-m", str(inputs["bpix"]), "-o", str(out),
            "--concurrency", "2"]
    with EmulatorProcess("--latency-ms", "150") as emu:
        env = env_for(emu)
        proc = subprocess.Popen([str(BIN / "dialsflow"), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(Manifest(out).entries(_key(BPIX)))) < 3:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        manifest = Manifest(out)
        entries = list(manifest.entries(_key(BPIX)))
        assert 3 <= len(entries) < len(runs)
        for e in entries:  # every entry vouches for a whole, matching file
            assert file_sha256(run_file(out, _key(BPIX), e.run)) == e.sha256
        for f in unit_dir(out, _key(BPIX)).glob("run_*.parquet"):
            pq.read_metadata(f)  # a visible parquet file is always a whole one
        rerun = dialsflow([*args, "--resubmit"], env)
        assert rerun.returncode == 0, rerun.stderr
        assert all(manifest.is_complete(_key(BPIX), run) for run in runs)
        assert not [p for p in unit_dir(out, _key(BPIX)).iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("case", ["invalid regex", "malformed json", "empty list", "no match",
                                  "not a list", "bad runs", "unwritable outdir"])
def test_bad_input_is_one_line_and_writes_nothing(emulator, inputs, tmp_path, case):
    d = inputs["zb"]
    m = inputs["charge"]
    out = tmp_path / "out"
    extra: list[str] = []
    if case == "invalid regex":
        m = write_json(tmp_path / "m.json", ["charge_(PXLayer"])
    elif case == "malformed json":
        (tmp_path / "m.json").write_text('["charge",')
        m = tmp_path / "m.json"
    elif case == "empty list":
        m = write_json(tmp_path / "m.json", [])
    elif case == "no match":
        d = write_json(tmp_path / "d.json", ["/NoSuchPD/"])
    elif case == "not a list":
        m = write_json(tmp_path / "m.json", {"me": CHARGE})
    elif case == "bad runs":
        extra = ["--runs", "380100-380000"]
    elif case == "unwritable outdir":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out"
    r = dialsflow(["fetch", "-d", str(d), "-m", str(m), "-o", str(out), *extra],
                  env_for(emulator))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dialsflow: error: "), r.stderr
    assert not list(tmp_path.rglob("*.parquet"))


def test_wrong_credentials_and_unreachable_host(emulator, inputs, tmp_path):
    wrong = dialsflow(["fetch", "-d", str(inputs["zb"]), "-m", str(inputs["charge"]), "-o",
                       str(tmp_path / "a")], env_for(emulator, password="wrong"))
    assert wrong.returncode == 2
    assert "refused the credentials" in wrong.stderr and len(wrong.stderr.splitlines()) == 1
    dead = "http://127.0.0.1:9/"
    unreachable = dialsflow(["fetch", "-d", str(inputs["zb"]), "-m", str(inputs["charge"]),
                             "-o", str(tmp_path / "b")],
                            env_for(emulator, host=dead,
                                    extra={"keycloak_url": dead + "auth/", "workspace": "tracker"}))
    assert unreachable.returncode == 2
    assert "cannot reach" in unreachable.stderr and len(unreachable.stderr.splitlines()) == 1
    assert not list(tmp_path.rglob("*.parquet"))


def test_progress_is_plain_lines(emulator, truth, inputs, tmp_path):
    run = runs_in_dials(truth, ZB)[0]
    r = dialsflow(["fetch", "-d", str(inputs["zb"]), "-m", str(inputs["charge"]), "-o",
                   str(tmp_path / "out"), "--runs", str(run)], env_for(emulator))
    assert "\r" not in r.stdout
    assert f"run {run}: " in r.stdout and "MB/s" in r.stdout and "ETA" in r.stdout
    assert "unit " in r.stdout and "1 runs written" in r.stdout


def th1_row(i: int) -> dict:
    return {"dataset_id": 1, "file_id": 1, "run_number": 379001, "ls_number": i + 1,
            "me_id": 7, "x_min": 0.0, "x_max": 3.0, "x_bin": 3, "entries": 6,
            "data": [1.0, 2.0, 3.0]}


def test_runs_of_a_unit_share_what_dials_was_too_slow_for(tmp_path):
    """DIALS answers 504 for a page of more than 25 rows (its 30 s limit): the first run
    halves its pages until they fit, the next runs of the unit start below the limit, and
    every row arrives once."""
    srv = PageServer(120, slower_than(25), row=th1_row)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    runs = (379001, 379002, 379003)
    unit = Unit(UnitKey("tracker", ZB, CHARGE), 1, 7, 1, runs)
    try:
        with dials_client(srv) as dials:
            report = ingest_units(dials, [unit], tmp_path, concurrency=1)
    finally:
        srv.shutdown()
        srv.server_close()
    assert not report.failed and [r.rows for r in report.results] == [120] * 3
    for run in runs:
        ls = pq.read_table(run_file(tmp_path, unit.key, run)).column("ls_number").to_pylist()
        assert ls == list(range(1, 121))
    sizes = {run: [int(q["page_size"]) for q in srv.queries if q["run_number"] == str(run)]
             for run in runs}
    assert sizes[379001][:6] == [500, 250, 125, 62, 31, 15]  # the first run finds the wall
    assert sizes[379002][0] <= 25 and sizes[379003][0] <= 25  # the next ones start below it
    assert sum(size > 25 for size in sizes[379002] + sizes[379003]) <= 1  # one probe at most
