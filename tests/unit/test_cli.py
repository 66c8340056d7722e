"""The `dialsflow` command line without services: version, connections, bad input."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dialsflow import __version__
from dialsflow.cli import main


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
