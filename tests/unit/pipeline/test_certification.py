"""Certification kept beside the maps, against the emulator's CAF over HTTP: exact bytes,
per-LS flags, idempotent refreshes, a newer release rewriting the table and never a map."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
import requests

import dialsflow
from dialsflow.cli import main
from dialsflow.config.connections import CafSettings, DialsSettings
from dialsflow.config.jobs import CertificationChoice, Job, OmsFilters
from dialsflow.config.runs import RunSelection
from dialsflow.pipeline.certification import (
    refresh_certification,
    refresh_from_caf,
    refresh_job_certification,
)
from dialsflow.store.certification import files_in_force, read_table
from dialsflow.store.layout import UnitKey, certification_file, certification_table
from dialsflow.store.manifest import Manifest
from dialsflow.times import iso
from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.world import build_world, utc

from ...clients import caf_client, connection
from .test_ingest import ZB, runs_in_dials

CHARGE = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"


def _caf_base(emu: EmulatorProcess) -> CafSettings:
    return CafSettings.from_connection(connection(emu, "caf_default", **{"class": "Collisions24"}))


def _certs(emu: EmulatorProcess):
    with caf_client(emu) as g, caf_client(emu, kind="dcs", energy="13p6TeV") as d:
        return g.current(), d.current()


@pytest.fixture(scope="module")
def late() -> Iterator[EmulatorProcess]:
    """The same world after its last Golden release."""
    files = build_world("demo", 1).cert_files
    now = max(c.published_at for c in files) + timedelta(days=1)
    with EmulatorProcess("--now", iso(now)) as emu:
        yield emu


@pytest.fixture(scope="module")
def maps(emulator, truth, tmp_path_factory) -> tuple[Path, list[int]]:
    """A 1D ME of four runs: three golden ones and one DIALS has but Golden does not."""
    golden = {int(r) for r in truth["certification"]["golden_runs"]}
    in_dials = runs_in_dials(truth, ZB)
    runs = [r for r in in_dials if r in golden][:3] + [r for r in in_dials if r not in golden][:1]
    out = tmp_path_factory.mktemp("cert") / "out"
    settings = DialsSettings.from_connection(connection(emulator, "dials_default"))
    report = dialsflow.fetch(replace(settings, workspace="tracker"), [ZB], [CHARGE], out,
                             runs=RunSelection.of(runs))
    assert not report.failed and len(report.written) == 4
    return out, sorted(runs)


def _snapshot(out: Path) -> dict[str, tuple[int, str]]:
    return {str(p): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in out.rglob("run_*.parquet")}


def _ranges_hold(ranges: list[list[int]], ls: int) -> bool:
    return any(a <= ls <= b for a, b in ranges)


def test_refresh_keeps_exact_bytes_flags_every_ls_and_is_idempotent(emulator, truth, maps,
                                                                     late):
    out, runs = maps
    before = _snapshot(out)
    golden, dcs = _certs(emulator)
    result = refresh_certification(out, golden, dcs)
    assert result.table_written and result.runs == 4 and result.runs_added == runs
    assert sorted(result.kept) == sorted(golden.names + dcs.names)
    for f in (*golden.files, *dcs.files):
        served = requests.get(f.url, timeout=10)
        kept = certification_file(out, f.name)
        assert kept.read_bytes() == served.content
        meta = orjson.loads(kept.with_name(kept.name + ".meta.json").read_bytes())
        assert meta["url"] == f.url and meta["sha256"] == hashlib.sha256(served.content).hexdigest()
        assert meta["kind"] == ("golden" if f in golden.files else "dcs")
        assert meta["last_modified"] == iso(parsedate_to_datetime(served.headers["Last-Modified"]))
        assert utc(meta["fetched_at"])

    table = read_table(out)
    assert files_in_force(table) == {"golden": golden.names, "dcs": dcs.names}
    rows = table.to_pylist()
    keys = [(r["run_number"], r["ls_number"]) for r in rows]
    assert keys == sorted(set(keys)) and {r for r, _ in keys} == set(runs)
    entries = {e.run: e for e in Manifest(out).entries(UnitKey("tracker", ZB, CHARGE))}
    golden_json = {int(k): v for k, v in orjson.loads(golden.files[-1].body).items()}
    dcs_json = {int(k): v for k, v in orjson.loads(dcs.files[-1].body).items()}
    for run in runs:
        ls_here = {ls for r, ls in keys if r == run}
        listed = {ls for a, b in golden_json.get(run, []) + dcs_json.get(run, [])
                  for ls in range(a, b + 1)}
        assert ls_here == set(entries[run].ls_numbers) | listed
    for r in rows:
        want_golden = _ranges_hold(truth["certification"]["golden_runs"].get(
            str(r["run_number"]), []), r["ls_number"])
        assert r["golden"] is want_golden
        assert r["golden_file"] == (golden.names[-1] if want_golden else None)
        want_dcs = _ranges_hold(dcs_json.get(r["run_number"], []), r["ls_number"])
        assert r["dcs"] is want_dcs and (r["dcs_file"] is not None) is want_dcs
    assert 0 < result.golden_ls < result.rows and result.rows == len(rows)

    # Nothing new: nothing written.
    stamp = certification_table(out).stat().st_mtime_ns
    again = refresh_certification(out, *_certs(emulator))
    assert not again.table_written and again.kept == [] and again.runs_added == []
    assert certification_table(out).stat().st_mtime_ns == stamp

    # A newer Golden release: kept beside the old one, the table rewritten, no map touched.
    new_golden, new_dcs = _certs(late)
    assert new_golden.names != golden.names
    newer = refresh_certification(out, new_golden, new_dcs)
    assert newer.table_written and set(new_golden.names) <= set(newer.kept)
    assert all(certification_file(out, n).is_file() for n in golden.names + new_golden.names)
    table = read_table(out)
    assert files_in_force(table)["golden"] == new_golden.names
    assert set(table.column("golden_file").drop_null().to_pylist()) <= set(new_golden.names)
    assert _snapshot(out) == before
    assert pq.ParquetFile(certification_table(out)).metadata.row_group(0).sorting_columns


def test_cli_refreshes_from_caf_default_and_refuses_bad_input(emulator, maps, tmp_path,
                                                              monkeypatch, capsys):
    out, _ = maps
    monkeypatch.setenv("AIRFLOW_CONN_CAF_DEFAULT",
                       orjson.dumps(emulator.connections()["caf_default"]).decode())
    assert main(["certification", "-o", str(out), "--class", "Collisions24"]) == 0
    assert "LS of 4 runs" in capsys.readouterr().out
    for args, message in (
            (["-o", str(tmp_path / "nothing")], "does not exist"),
            (["-o", str(tmp_path), "--energy", "13.6 TeV"], "--energy '13.6 TeV'"),
            (["-o", str(tmp_path), "--class", "../x"], "--class '../x'"),
            (["-o", str(tmp_path), "--class", "Collisions99"], "no such class")):
        assert main(["certification", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (args, err)
    assert list(tmp_path.iterdir()) == []


def test_refresh_from_caf_needs_an_output_directory(emulator, tmp_path):
    with pytest.raises(dialsflow.InputError, match="does not exist"):
        refresh_from_caf(tmp_path / "missing", _caf_base(emulator), "13p6TeV")


def test_the_nightly_step_starts_a_new_output_root(emulator, tmp_path):
    job = Job(name="j", workspace="tracker", datasets_file=tmp_path / "d.json",
              mes_file=tmp_path / "m.json", dataset_patterns=(ZB,), me_patterns=(CHARGE,),
              me_type="auto", output=tmp_path / "new", certification=CertificationChoice(),
              oms=OmsFilters(), completeness_tolerance=0.0)
    result = refresh_job_certification(job, _caf_base(emulator))
    golden, dcs = _certs(emulator)
    assert result.rows == 0 and result.table_written
    assert sorted(result.kept) == sorted(golden.names + dcs.names)
    assert read_table(job.output).num_rows == 0
