"""The jobs file: the shipped ones load, and every mistake is one clear line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dialsflow.config.connections import CafSettings
from dialsflow.config.jobs import (
    DEFAULT_JOBS_FILE,
    PROJECT_ROOT,
    get_job,
    load_jobs,
    select_jobs,
)
from dialsflow.errors import InputError

JSONS = PROJECT_ROOT / "include" / "jsons"


def good_job(**overrides: object) -> dict:
    job = {
        "name": "pixel", "workspace": "tracker", "datasets_file": "datasets.json",
        "mes_file": "mes.json", "output": "pixel_out",
        "certification": {"class": "Collisions24", "kind": "golden"},
        "oms": {"stable_beam": True, "min_recorded_lumi": 0.5, "components": ["PIXEL"]},
        "lookback_days": 7, "completeness_tolerance": 0.05,
    }
    job.update(overrides)
    return job


def write_jobs(folder: Path, *jobs: dict, datasets: object = None, mes: object = None) -> Path:
    (folder / "datasets.json").write_bytes(orjson.dumps(
        datasets if datasets is not None else ["/ZeroBias/Run2024C-PromptReco-v1/DQMIO"]))
    (folder / "mes.json").write_bytes(orjson.dumps(
        mes if mes is not None else ["PixelPhase1/Tracks/PXForward/charge_PXDisk_\\+1"]))
    path = folder / "jobs.json"
    path.write_bytes(orjson.dumps({"jobs": list(jobs) or [good_job()]}))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(InputError) as info:
        load_jobs(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- valid files


def test_shipped_jobs_files_load_with_their_lists(monkeypatch, tmp_path):
    monkeypatch.setenv("DIALSFLOW_OUTPUT_ROOT", str(tmp_path))
    monkeypatch.delenv("DIALSFLOW_JOBS_FILE", raising=False)
    demo = load_jobs()
    assert list(demo) == ["demo_tracker", "demo_ecal"]
    zb = demo["demo_tracker"]
    assert zb.datasets_file == JSONS / "datasets_zerobias_2024c.json"
    assert zb.dataset_patterns == ("/ZeroBias/Run2024C-PromptReco-v1/DQMIO",)
    assert zb.output == tmp_path / "demo_tracker"
    assert zb.output_uri == (tmp_path / "demo_tracker").as_uri()
    assert demo["demo_ecal"].workspace == "ecal"
    cern = load_jobs(JSONS / "jobs_cern.json")
    assert all(j.oms.stable_beam and j.oms.min_recorded_lumi > 0 for j in cern.values())
    assert {j.certification.kind for j in cern.values()} == {"golden", "dcs"}
    assert load_jobs(DEFAULT_JOBS_FILE).keys() == demo.keys()


def test_defaults_paths_and_environment(monkeypatch, tmp_path):
    path = write_jobs(tmp_path, good_job(certification={}, oms={}, me_type="h2d"),
                      good_job(name="abs", output=str(tmp_path / "elsewhere")))
    monkeypatch.setenv("DIALSFLOW_JOBS_FILE", str(path))
    monkeypatch.delenv("DIALSFLOW_OUTPUT_ROOT", raising=False)
    job = get_job("pixel")
    assert job.me_patterns == ("PixelPhase1/Tracks/PXForward/charge_PXDisk_\\+1",)
    assert job.mes_file == tmp_path / "mes.json"
    assert job.output == PROJECT_ROOT / "out" / "pixel_out"
    assert (job.oms.stable_beam, job.oms.min_recorded_lumi, job.oms.components) == \
        (False, 0.0, ())
    assert job.me_type == "h2d"
    assert get_job("abs").output == tmp_path / "elsewhere"
    assert [j.name for j in select_jobs([])] == ["pixel", "abs"]
    assert [j.name for j in select_jobs(["abs"])] == ["abs"]


def test_job_certification_overrides_the_connection():
    conn = CafSettings("https://caf.example/CAF/certification", "Collisions23", "dcs", True)
    jobs = load_jobs(JSONS / "jobs.json")
    golden = jobs["demo_tracker"].caf_settings(conn)
    assert (golden.url, golden.cert_class, golden.kind) == (conn.url, "Collisions24", "golden")


def test_connection_applies_where_the_job_is_silent(tmp_path):
    path = write_jobs(tmp_path, good_job(certification={"kind": "muon"}))
    conn = CafSettings("https://caf.example/CAF/certification", "Collisions23", "dcs", False)
    settings = load_jobs(path)["pixel"].caf_settings(conn)
    assert (settings.cert_class, settings.kind, settings.verify) == ("Collisions23", "muon", False)


# --------------------------------------------------------------------------- errors


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text('{"jobs": [ {"name": "x",, } ]}')
    assert error_of(path).startswith(f"jobs file {path} is not valid JSON")


def test_missing_file_names_the_variable(tmp_path):
    assert "DIALSFLOW_JOBS_FILE" in error_of(tmp_path / "nope.json")


def test_unknown_job_lists_the_known_ones(tmp_path):
    path = write_jobs(tmp_path, good_job(), good_job(name="ecal"))
    with pytest.raises(InputError, match=r"no job 'tracker'; known jobs: pixel, ecal$"):
        get_job("tracker", path)
    with pytest.raises(InputError, match=r"no job 'x'; known jobs: pixel, ecal$"):
        select_jobs(["pixel", "x"], path)


def test_bad_regex_in_a_list_file_names_job_field_and_pattern(tmp_path):
    path = write_jobs(tmp_path, mes=["charge_PXDisk_+1", "(unclosed"])
    message = error_of(path)
    assert message.startswith(f"jobs file {path}, job 'pixel', mes_file: invalid regex in MEs:")
    assert "'(unclosed'" in message


def test_missing_list_file(tmp_path):
    path = write_jobs(tmp_path, good_job(datasets_file="missing.json"))
    assert error_of(path) == (f"jobs file {path}, job 'pixel', datasets_file: datasets file "
                              f"not found: {tmp_path / 'missing.json'}")


@pytest.mark.parametrize(("job", "field", "says"), [
    (good_job(schedule="daily"), "(job)", "unknown key 'schedule'"),
    (good_job(oms={"stable_beams": True}), "oms", "unknown key 'stable_beams'"),
    (good_job(certification={"class": "Collisions24", "type": "golden"}), "certification",
     "unknown key 'type'"),
])
def test_unknown_keys_are_refused(tmp_path, job, field, says):
    path = write_jobs(tmp_path, job)
    message = error_of(path)
    assert message.startswith(f"jobs file {path}, job 'pixel', {field}: {says}; allowed: ")


@pytest.mark.parametrize(("change", "field", "says"), [
    ({"lookback_days": "7"}, "lookback_days", "must be an integer >= 0, not '7'"),
    ({"lookback_days": -1}, "lookback_days", "must be an integer >= 0, not -1"),
    ({"lookback_days": True}, "lookback_days", "must be an integer >= 0, not True"),
    ({"completeness_tolerance": 1.5}, "completeness_tolerance", "must be a number in [0, 1]"),
    ({"oms": {"stable_beam": "yes"}}, "oms.stable_beam", "must be true or false, not a string"),
    ({"oms": {"min_recorded_lumi": -2}}, "oms.min_recorded_lumi", "must be a number >= 0"),
    ({"oms": {"components": "PIXEL"}}, "oms.components", "must be a list"),
    ({"certification": {"kind": "Golden"}}, "certification.kind",
     "must be one of golden, muon, dcs, not 'Golden'"),
    ({"certification": {"class": "../x"}}, "certification.class", "is not a CAF class"),
    ({"me_type": "th2"}, "me_type", "must be one of auto, h1d, h2d, not 'th2'"),
    ({"workspace": 3}, "workspace", "must be a string, not an integer"),
    ({"output": ["a"]}, "output", "must be a path (string), not a list"),
    ({"output": "s3://bucket/x"}, "output", "only local paths are supported so far"),
    ({"certification": "golden"}, "certification", "must be an object, not a string"),
])
def test_wrong_types_and_values(tmp_path, change, field, says):
    path = write_jobs(tmp_path, good_job(**change))
    message = error_of(path)
    assert message.startswith(f"jobs file {path}, job 'pixel', {field}: ")
    assert says in message


def test_structure_errors(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text('[{"name": "pixel"}]')
    assert 'expected an object {"jobs": [...]}' in error_of(path)
    path.write_text('{"jobs": []}')
    assert "define at least one job" in error_of(path)
    path = write_jobs(tmp_path, good_job(), good_job())
    assert error_of(path) == f"jobs file {path}: job name 'pixel' is used twice"
    job = good_job()
    del job["lookback_days"]
    path = write_jobs(tmp_path, job)
    assert error_of(path) == f"jobs file {path}, job 'pixel', lookback_days: is required"
    path = write_jobs(tmp_path, good_job(name="has space"))
    assert "job 'has space', name: 'has space' is not letters, digits" in error_of(path)
    path.write_bytes(orjson.dumps({"jobs": ["pixel"]}))
    assert error_of(path) == f"jobs file {path}, job #1, (job): must be an object, not a string"
