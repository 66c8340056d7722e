"""Which per-LS conditions a job keeps: the jobs file's `conditions` and the CLI's lists."""

from __future__ import annotations

import pytest

from dialsflow.config.conditions import ConditionsSpec, column_key, spec_of
from dialsflow.config.jobs import load_jobs
from dialsflow.errors import InputError

from .test_jobs import error_of, good_job, write_jobs


@pytest.mark.parametrize(("name", "key"), [
    ("HLT_ZeroBias_v*", "HLT_ZeroBias"), ("ZeroBias", "ZeroBias"),
    ("HLT_IsoMu24_v*", "HLT_IsoMu24"), ("HLT_Ele*_WPTight?", "HLT_Ele__WPTight_"),
    ("HLT_PFJet500_v1", "HLT_PFJet500_v1"),
    ("ParkingDoubleMuonLowMass-0", "ParkingDoubleMuonLowMass_0"),
])
def test_column_key(name, key):
    assert column_key(name) == key


def test_defaults_fit_zerobias_jobs(tmp_path):
    job = load_jobs(write_jobs(tmp_path, good_job(output=str(tmp_path))))["pixel"]
    assert job.conditions == ConditionsSpec(("HLT_ZeroBias_v*",), ("ZeroBias",), True)
    other = load_jobs(write_jobs(tmp_path, good_job(output=str(tmp_path), conditions={
        "hlt_paths": ["HLT_IsoMu24_v*", "HLT_Physics_v*"], "datasets": [], "enabled": False,
    })))["pixel"]
    assert other.conditions == ConditionsSpec(("HLT_IsoMu24_v*", "HLT_Physics_v*"), (), False)
    assert other.conditions.to_json() == {"hlt_paths": ["HLT_IsoMu24_v*", "HLT_Physics_v*"],
                                          "datasets": []}


@pytest.mark.parametrize(("conditions", "field", "says"), [
    ([], "conditions", "must be an object, not a list"),
    ({"hlt_paths": "HLT_ZeroBias_v*"}, "conditions.hlt_paths", "must be a list of HLT path"),
    ({"hlt_paths": ["HLT ZeroBias"]}, "conditions.hlt_paths", "must be a list of HLT path"),
    ({"datasets": ["Zero/Bias"]}, "conditions.datasets", "must be a list of primary dataset"),
    ({"enabled": 1}, "conditions.enabled", "must be true or false, not an integer"),
    ({"hlt_paths": ["HLT_A_v*", "HLT_A"]}, "conditions.hlt_paths",
     "'HLT_A_v*' and 'HLT_A' would both be column 'HLT_A'"),
    ({"datasets": ["ZeroBias", "ZeroBias"]}, "conditions.datasets", "'ZeroBias' is listed twice"),
])
def test_bad_conditions_are_one_line(tmp_path, conditions, field, says):
    path = write_jobs(tmp_path, good_job(conditions=conditions))
    message = error_of(path)
    assert message.startswith(f"jobs file {path}, job 'pixel', {field}: ")
    assert says in message


def test_command_line_lists():
    assert spec_of(None, None) == ConditionsSpec()
    assert spec_of(["HLT_IsoMu24_v*"], None) == ConditionsSpec(("HLT_IsoMu24_v*",),
                                                               ("ZeroBias",))
    assert spec_of(None, ["Muon0", "EGamma0"]).datasets == ("Muon0", "EGamma0")
    for hlt, datasets, says in [
            (["HLT ZeroBias"], None, "--hlt-path 'HLT ZeroBias': not an HLT path name"),
            (None, ["/ZeroBias/Run2024C"], "--dataset '/ZeroBias/Run2024C': not a primary"),
            (["HLT_A_v*", "HLT_A"], None, "--hlt-path: 'HLT_A_v*' and 'HLT_A' would both be"),
    ]:
        with pytest.raises(InputError, match="^" + says.replace("*", r"\*")):
            spec_of(hlt, datasets)
