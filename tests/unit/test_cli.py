"""The `dialsflow` command line: version, connections, bad input; without a dials_default
connection (production, unreachable here); a full disk (a real tmpfs, against the emulator)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from dialsflow import __version__
from dialsflow.cli import main
from dialsflow.store.layout import run_file, units_on_disk
from dialsflow.store.manifest import Manifest, file_sha256

from ..fs import small_fs

BIN = Path(sys.executable).parent


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"dialsflow {__version__}"


def test_connections_are_shown_with_the_secret_masked(monkeypatch, capsys):
    for conn_id in ("DIALS", "OMS", "DBS", "CAF"):
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id}_DEFAULT", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_DIALS_DEFAULT", orjson.dumps({
        "conn_type": "http", "host": "http://127.0.0.1:9/", "login": "client",
        "password": "s3cret-value", "extra": {"workspace": "tracker"}}).decode())
    assert main(["connections"]) == 0
    out = capsys.readouterr().out
    assert "dials_default: http://127.0.0.1:9/ login=client password=***" in out
    assert "s3cret-value" not in out
    assert "oms_default: not set (AIRFLOW_CONN_OMS_DEFAULT)" in out


@pytest.mark.parametrize(("args", "expected"), [
    (["--concurrency", "0"], "--concurrency must be between 1 and 32"),
    (["--runs", "5-3"], "--runs '5-3': give FIRST-LAST"),
])
def test_bad_fetch_flags_exit_2_with_one_line_and_write_nothing(tmp_path: Path, capsys,
                                                                 args, expected):
    patterns = tmp_path / "p.json"
    patterns.write_bytes(b'["x"]')
    out = tmp_path / "out"
    code = main(["fetch", "-d", str(patterns), "-m", str(patterns), "-o", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("dialsflow: error: ") and expected in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_missing_pattern_file_exits_2(tmp_path: Path, capsys):
    code = main(["fetch", "-d", str(tmp_path / "nope.json"), "-m", str(tmp_path / "x.json"),
                 "-o", str(tmp_path / "out")])
    assert code == 2 and "datasets file not found" in capsys.readouterr().err


ROOT = Path(__file__).resolve().parents[2]
DEMO_JOBS = ROOT / "include" / "jsons" / "jobs.json"


@pytest.mark.parametrize(("args", "env", "expected"), [
    ([], {}, "DIALSFLOW_JOBS_FILE is not set: point it at your jobs file"),
    (["--jobs-file", str(DEMO_JOBS), "-j", "nosuchjob"], {},
     "no job 'nosuchjob'; known jobs: demo_tracker, demo_ecal"),
    (["--jobs-file", str(DEMO_JOBS)], {}, "connection oms_default is not set: set "
                                          "AIRFLOW_CONN_OMS_DEFAULT"),
    (["--jobs-file", str(DEMO_JOBS), "--runs", "9-1"], {}, "--runs '9-1': give FIRST-LAST"),
])
def test_bad_plan_input_exits_2_with_one_line(monkeypatch, tmp_path, capsys, args, env,
                                              expected):
    for name in ("DIALSFLOW_JOBS_FILE", *(f"AIRFLOW_CONN_{c}_DEFAULT"
                                          for c in ("DIALS", "OMS", "DBS", "CAF"))):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIALSFLOW_OUTPUT_ROOT", str(tmp_path))
    code = main(["plan", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("dialsflow: error: ") and expected in err, err
    assert len(err.splitlines()) == 1


def test_plan_at_must_be_an_iso_time(capsys):
    with pytest.raises(SystemExit) as info:
        main(["plan", "--at", "yesterday"])
    assert info.value.code == 2
    assert "not an ISO 8601 time: 'yesterday'" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "says"), [
    (["--runs", "5-3"], "--runs '5-3': give FIRST-LAST"),
    (["--runs", "379412", "--hlt-path", "HLT ZeroBias"], "--hlt-path 'HLT ZeroBias': not an"),
    (["--runs", "379412", "--dataset", "ZeroBias", "--dataset", "ZeroBias"],
     "--dataset: 'ZeroBias' is listed twice"),
    (["--runs", "379412"], "connection oms_default is not set"),
])
def test_bad_conditions_input_exits_2_and_writes_nothing(monkeypatch, tmp_path, capsys, args,
                                                         says):
    monkeypatch.delenv("AIRFLOW_CONN_OMS_DEFAULT", raising=False)
    out = tmp_path / "out"
    assert main(["conditions", "-o", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dialsflow: error: ") and says in err and len(err.splitlines()) == 1
    assert not out.exists()


def _dialsflow(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dialsflow"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_without_dials_default_production_is_announced_and_unreachable_is_one_line(tmp_path):
    """No connection: a notice says production DIALS with cached credentials is used; with
    production unreachable (every request goes to a dead proxy here) the one error line
    names both facts, and nothing is written: no output folder, no ./.cache/."""
    patterns = tmp_path / "p.json"
    patterns.write_bytes(b'["x"]')
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW_CONN_") and k.lower() not in ("no_proxy", "all_proxy")}
    dead = "http://127.0.0.1:9"
    env.update(HTTPS_PROXY=dead, https_proxy=dead, HTTP_PROXY=dead, http_proxy=dead)
    r = _dialsflow(["fetch", "-d", str(patterns), "-m", str(patterns), "-o", "out"], env,
                   tmp_path)
    notice, error = r.stderr.strip().splitlines()
    assert r.returncode == 2
    assert notice == ("dialsflow: notice: no dials_default connection found; using production "
                      "DIALS with cached credentials")
    assert error.startswith("dialsflow: error: no dials_default connection found, and "
                            "production DIALS is unreachable (cannot reach Keycloak at "
                            "https://auth.cern.ch/auth/"), error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


ZB = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
BPIX = "digi_occupancy_per_SignedModuleCoord_per_SignedLadderCoord_PXLayer_1$"


def test_a_full_disk_stops_the_fetch_at_the_first_enospc_named_once(emulator, tmp_path):
    """A 256 KiB tmpfs takes a few 2D runs of the 45 asked for: the fetch stops at the first
    file that does not fit, with one line naming it and "No space left on device"; no
    per-run failure lines; what is on disk is whole (each manifest entry has its file with
    the recorded sha256, no temporary file)."""
    datasets, mes = tmp_path / "d.json", tmp_path / "m.json"
    datasets.write_bytes(orjson.dumps([ZB]))
    mes.write_bytes(orjson.dumps([BPIX]))
    env = {**os.environ, **emulator.connection_env()}
    with small_fs("256k") as root:
        r = _dialsflow(["fetch", "-d", str(datasets), "-m", str(mes), "-o", str(root / "out")],
                       env, tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith(f"dialsflow: error: cannot write {root / 'out'}/"), lines
        assert lines[0].count("No space left on device") == 1
        assert "FAILED" not in r.stdout and "failed" not in r.stdout
        out = root / "out"
        entries = [e for key in units_on_disk(out) for e in Manifest(out).entries(key)]
        for e in entries:
            assert file_sha256(run_file(out, e.key, e.run)) == e.sha256
        assert len(entries) < 45
        assert not [p for p in root.rglob(".*") if p.is_file()]


def test_a_full_disk_stops_the_conditions_at_the_first_enospc_named_once(emulator, tmp_path):
    """The same for per-LS conditions: a 64 KiB tmpfs takes a few runs' tables; the first
    that does not fit stops the command with one line; what is on disk is whole."""
    from dialsflow.store import conditions

    env = {**os.environ, **emulator.connection_env()}
    with small_fs("64k") as root:
        out = root / "out"
        r = _dialsflow(["conditions", "-o", str(out), "--runs", "379412-379700"], env,
                       tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith(f"dialsflow: error: cannot write {out}/"), lines
        assert lines[0].count("No space left on device") == 1
        assert "conditions tables written" in lines[0]
        written = int(lines[0].split("stopped after ")[1].split()[0])
        on_disk = sorted(p for p in (out / "_conditions" / "oms").glob("run_*.parquet"))
        assert written >= 1 and len(on_disk) >= written
        for path in on_disk:
            run = int(path.stem.removeprefix("run_"))
            entry = conditions.entry(out, run)
            if entry is not None:  # a table whose entry did not fit is not recorded
                assert path.stat().st_size == entry.bytes
        assert not [p for p in root.rglob(".*") if p.is_file()]
