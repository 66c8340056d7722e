"""The jobs file: the shipped ones load, and every mistake is one clear line."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import orjson
import pytest

from dialsflow.config.connections import CafSettings
from dialsflow.config.jobs import (
    ME_TYPES,
    CertificationChoice,
    OmsFilters,
    get_job,
    load_jobs,
    select_jobs,
)
from dialsflow.errors import InputError

JSONS = next(p for p in Path(__file__).resolve().parents if (p / "include" / "jsons").is_dir()) \
    / "include" / "jsons"


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path):
    """No jobs file named by the environment; relative outputs go under tmp_path/out."""
    monkeypatch.delenv("DIALSFLOW_JOBS_FILE", raising=False)
    monkeypatch.setenv("DIALSFLOW_OUTPUT_ROOT", str(tmp_path / "out"))


def good_job(**overrides: object) -> dict:
    job = {
        "name": "pixel", "workspace": "tracker", "datasets_file": "datasets.json",
        "mes_file": "mes.json", "output": "pixel_out",
        "certification": {"class": "Collisions24", "kind": "golden"},
        "oms": {"stable_beam": True, "min_recorded_lumi": 0.5, "components": ["PIXEL"]},
        "max_runs_per_night": 50, "completeness_tolerance": 0.05,
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


def error_of(path: Path | None) -> str:
    with pytest.raises(InputError) as info:
        load_jobs(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- valid files


def test_shipped_jobs_files_load_with_their_lists(monkeypatch, tmp_path):
    monkeypatch.setenv("DIALSFLOW_OUTPUT_ROOT", str(tmp_path))
    monkeypatch.delenv("DIALSFLOW_JOBS_FILE", raising=False)
    assert error_of(None) == ("DIALSFLOW_JOBS_FILE is not set: point it at your jobs file "
                              "(the demo's is include/jsons/jobs.json)")
    demo = load_jobs(JSONS / "jobs.json")
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
    monkeypatch.setenv("DIALSFLOW_JOBS_FILE", str(JSONS / "jobs.json"))
    assert load_jobs().keys() == demo.keys()


def test_defaults_paths_and_environment(monkeypatch, tmp_path):
    path = write_jobs(tmp_path, good_job(certification={}, oms={}, me_type="h2d"),
                      good_job(name="abs", output=str(tmp_path / "elsewhere")))
    monkeypatch.setenv("DIALSFLOW_JOBS_FILE", str(path))
    monkeypatch.setenv("DIALSFLOW_OUTPUT_ROOT", str(tmp_path / "root"))
    job = get_job("pixel")
    assert job.me_patterns == ("PixelPhase1/Tracks/PXForward/charge_PXDisk_\\+1",)
    assert job.mes_file == tmp_path / "mes.json"
    assert job.output == tmp_path / "root" / "pixel_out"
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
    ({"max_runs_per_night": "7"}, "max_runs_per_night", "must be an integer >= 1, not '7'"),
    ({"max_runs_per_night": 0}, "max_runs_per_night", "must be an integer >= 1, not 0"),
    ({"max_runs_per_night": True}, "max_runs_per_night", "must be an integer >= 1, not True"),
    ({"stuck_after_hours": 0}, "stuck_after_hours", "must be a number of hours > 0, not 0"),
    ({"certification": {"energy": "13.6 TeV"}}, "certification.energy",
     "must be an energy tag such as '13p6TeV', not '13.6 TeV'"),
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
    del job["completeness_tolerance"]
    path = write_jobs(tmp_path, job)
    assert error_of(path) == f"jobs file {path}, job 'pixel', completeness_tolerance: is required"
    path = write_jobs(tmp_path, good_job(name="has space"))
    assert "job 'has space', name: 'has space' is not letters, digits" in error_of(path)
    path.write_bytes(orjson.dumps({"jobs": ["pixel"]}))
    assert error_of(path) == f"jobs file {path}, job #1, (job): must be an object, not a string"


# --------------------------------------------------------------------------- the schema


def test_no_jobs_file_without_the_variable():
    with pytest.raises(InputError) as info:
        get_job("pixel")
    assert str(info.value) == ("DIALSFLOW_JOBS_FILE is not set: point it at your jobs file "
                               "(the demo's is include/jsons/jobs.json)")
    with pytest.raises(InputError, match=r"^DIALSFLOW_JOBS_FILE is not set"):
        select_jobs(None)


def test_relative_output_needs_the_output_root(monkeypatch, tmp_path):
    monkeypatch.delenv("DIALSFLOW_OUTPUT_ROOT")
    path = write_jobs(tmp_path, good_job(output=str(tmp_path / "abs")))
    assert load_jobs(path)["pixel"].output == tmp_path / "abs"
    path = write_jobs(tmp_path, good_job(name="rel"))
    assert error_of(path) == (
        f"jobs file {path}, job 'rel', output: 'pixel_out' is relative but DIALSFLOW_OUTPUT_ROOT "
        "is not set: set it to the folder relative outputs go under, or make the output absolute")


@pytest.mark.parametrize(("change", "field", "says"), [
    # JSON types are not coerced: a boolean is not a number, a float not an integer
    ({"max_runs_per_night": 7.0}, "max_runs_per_night", "must be an integer >= 1, not 7.0"),
    ({"completeness_tolerance": True}, "completeness_tolerance",
     "must be a number in [0, 1], not True"),
    ({"completeness_tolerance": "0.1"}, "completeness_tolerance",
     "must be a number in [0, 1], not '0.1'"),
    ({"description": 3}, "description", "must be a string, not an integer"),
    ({"datasets_file": " "}, "datasets_file", "must be a file name (string), not a blank string"),
    ({"mes_file": None}, "mes_file", "must be a file name (string), not null"),
    ({"workspace": "a/b"}, "workspace", "'a/b' is not a DIALS workspace name"),
    ({"me_type": 2}, "me_type", "must be one of auto, h1d, h2d, not 2"),
    # one per nested field
    ({"certification": {"class": 24}}, "certification.class", "must be a string, not an integer"),
    ({"certification": {"class": "Collisions24/x"}}, "certification.class",
     "'Collisions24/x' is not a CAF class such as 'Collisions24'"),
    ({"certification": {"kind": ["golden"]}}, "certification.kind",
     "must be one of golden, muon, dcs, not ['golden']"),
    ({"oms": {"stable_beam": 1}}, "oms.stable_beam", "must be true or false, not an integer"),
    ({"oms": {"min_recorded_lumi": True}}, "oms.min_recorded_lumi",
     "must be a number >= 0 (pb^-1), not True"),
    ({"oms": {"min_recorded_lumi": "1"}}, "oms.min_recorded_lumi",
     "must be a number >= 0 (pb^-1), not '1'"),
    ({"oms": {"components": ["PIXEL", ""]}}, "oms.components",
     'must be a list of OMS component names such as ["PIXEL", "TRACKER"]'),
    ({"oms": {"components": ["PIXEL", 3]}}, "oms.components",
     'must be a list of OMS component names such as ["PIXEL", "TRACKER"]'),
    ({"oms": []}, "oms", "must be an object, not a list"),
])
def test_each_field_has_its_one_line(tmp_path, change, field, says):
    path = write_jobs(tmp_path, good_job(**change))
    assert error_of(path) == f"jobs file {path}, job 'pixel', {field}: {says}"


@pytest.mark.parametrize(("job", "field", "says"), [
    (good_job(schedule="daily", owner="me"), "(job)",
     "unknown key 'owner', 'schedule'; allowed: certification, completeness_tolerance, "
     "conditions, datasets_file, description, export, max_runs_per_night, me_type, mes_file, "
     "name, oms, output, stuck_after_hours, workspace"),
    (good_job(lookback_days=10), "(job)",
     "unknown key 'lookback_days'; allowed: certification, completeness_tolerance, "
     "conditions, datasets_file, description, export, max_runs_per_night, me_type, mes_file, "
     "name, oms, output, stuck_after_hours, workspace"),
    (good_job(certification={"cert_class": "Collisions24"}), "certification",
     "unknown key 'cert_class'; allowed: class, energy, kind"),
    (good_job(conditions={"hlt_path": ["HLT_ZeroBias_v*"]}), "conditions",
     "unknown key 'hlt_path'; allowed: datasets, enabled, hlt_paths"),
    (good_job(oms={"stable_beam": True, "lumi": 1}), "oms",
     "unknown key 'lumi'; allowed: components, min_recorded_lumi, stable_beam"),
])
def test_unknown_keys_are_listed_with_the_allowed_ones(tmp_path, job, field, says):
    path = write_jobs(tmp_path, job)
    assert error_of(path) == f"jobs file {path}, job 'pixel', {field}: {says}"


def test_a_misspelt_key_is_reported_before_the_missing_one(tmp_path):
    job = good_job(completeness_toleranse=0.1, max_runs_per_night=0)
    del job["completeness_tolerance"]
    path = write_jobs(tmp_path, job)
    assert error_of(path).startswith(f"jobs file {path}, job 'pixel', (job): unknown key "
                                     "'completeness_toleranse'; allowed: ")


def test_a_job_without_a_usable_name_is_named_by_its_place(tmp_path):
    path = write_jobs(tmp_path, good_job(), good_job(name=3))
    assert error_of(path) == f"jobs file {path}, job #2, name: must be a string, not an integer"
    job = good_job()
    del job["name"]
    path = write_jobs(tmp_path, job)
    assert error_of(path) == f"jobs file {path}, job #1, name: is required"


def test_the_top_level_is_closed(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_bytes(orjson.dumps({"jobs": [good_job()], "defaults": {}}))
    assert error_of(path) == (f'jobs file {path}: expected an object {{"jobs": [...]}} and '
                              "nothing else at the top level")
    path.write_bytes(orjson.dumps({"jobs": {"pixel": good_job()}}))
    assert 'expected an object {"jobs": [...]}' in error_of(path)


def test_parsed_values_and_python_construction(tmp_path):
    path = write_jobs(tmp_path, good_job(oms={"components": ["PIXEL", "TRACKER", "PIXEL"],
                                              "min_recorded_lumi": 2},
                                         completeness_tolerance=0))
    job = load_jobs(path)["pixel"]
    assert job.oms == OmsFilters(False, 2.0, ("PIXEL", "TRACKER"))
    assert isinstance(job.oms.min_recorded_lumi, float)
    assert isinstance(job.completeness_tolerance, float)
    assert job.certification == CertificationChoice("Collisions24", "golden") == \
        CertificationChoice(cert_class="Collisions24", kind="golden")
    assert hash(job) == hash(replace(job))  # frozen and hashable, as Airflow and tests use it
    with pytest.raises(FrozenInstanceError):
        job.oms.stable_beam = True  # type: ignore[misc]
    assert ME_TYPES == ("auto", "h1d", "h2d")
