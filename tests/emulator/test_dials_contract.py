"""Every GET path and parameter of the DIALS OpenAPI file is served, and junk never breaks it.

`dials_get_contract.json` records the paths and parameters of
the DIALS OpenAPI file (dials_openapi.json of the shared contract notes), so these tests
run on a clone without it.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialsflow_emulator.dials.pgregex import PgRegexError, Unsupported, compile_are
from dialsflow_emulator.process import EmulatorProcess

from .test_dials_api import EXPRESS, ZERO_BIAS, DialsHttp

CONTRACT_FILE = Path(__file__).with_name("dials_get_contract.json")
CONTRACT = json.loads(CONTRACT_FILE.read_text())
SHARED_OPENAPI = Path("/work/shared/reference/dials_openapi.json")
PATHS = {entry["path"]: entry["parameters"] for entry in CONTRACT["paths"]}
CALLS = [(path, None) for path in PATHS] + [
    (path, p["name"]) for path, params in PATHS.items() for p in params if p["in"] == "query"]
ME_1D = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"
ME_2D = ("PixelPhase1/Phase1_MechanicalView/PXBarrel/digi_occupancy_per_SignedModuleCoord_per_"
         "SignedLadderCoord_PXLayer_1")
#: Answers that are not a list of results (so "non-empty" means a non-empty object).
NOT_PAGED = ("/auth/", "/workspaces", "/caf/", "/brilws/", "/oms-proxy/", "-json", "/count/")


@pytest.fixture(scope="module")
def dials(emulator: EmulatorProcess) -> DialsHttp:
    return DialsHttp(emulator)


@pytest.fixture(scope="module")
def world_values(dials: DialsHttp, truth: dict) -> dict[str, str]:
    """One coherent set of valid values: an LS of Zero Bias that model 1 flagged."""
    bad = dials.json("ml-bad-lumisection/", {"model_id": 1, "dataset_id": ZERO_BIAS,
                                             "page_size": 1})["results"][0]
    run, ls = bad["run_number"], bad["ls_number"]
    (f,) = [f for f in dials.rows("file-index/", {"dataset_id": ZERO_BIAS, "page_size": 500})
            if f["file_id"] == bad["file_id"]]
    model = dials.json("ml-models-index/1/")
    fill = next(r["fill_number"] for r in truth["runs"] if r["run_number"] == run)
    return {
        "dataset_id": str(ZERO_BIAS), "dataset_id__in": f"{EXPRESS},{ZERO_BIAS}",
        "dataset": f["dataset"], "dataset__regex": "ZeroBias", "run_number": str(run),
        "run_number__lte": str(run), "run_number__gte": str(run), "run_number__in": str(run),
        "ls_number": str(ls), "ls_number__lte": str(ls), "ls_number__gte": str(ls),
        "file_id": str(f["file_id"]), "logical_file_name": f["logical_file_name"],
        "logical_file_name__regex": "ZeroBias", "status": "FINISHED", "min_size": "1000",
        "entries__gte": "0", "dim": "2", "me__regex": "PXLayer_1", "model_id": "1",
        "model_id__in": "1,2", "filename": model["filename"], "filename__regex": "nmf",
        "target_me": model["target_me"], "target_me__regex": "PXLayer_1", "active": "true",
        "page_size": "5", "fields": "dataset_id,me_id,model_id,run_number",
        "class_name": truth["cert_class"], "kind": "golden",
        "dataset_name": "/PromptReco/Collisions2024/DQM", "global_state": "OPEN",
        "brilws_version": "3.7.4", "connect": "offline", "fillnum": str(fill),
        "runnumber": str(run), "beamstatus": "STABLE BEAMS", "unit": "/pb",
        "amodetag": "PROTPHYS", "normtag": "online", "begin": str(run), "end": str(run),
        "byls": "true", "scope": "all", "endpoint": "runs",
    }


def _me(path: str) -> tuple[str, str]:
    """th1 needs a 1D ME; th2, mes and the model's bad LS the 2D map."""
    return ("5", ME_1D) if path.startswith("/api/v1/th1/") else ("15682", ME_2D)


def _query(path: str, name: str, values: dict[str, str]) -> list[tuple[str, str]]:
    me_id, me = _me(path)
    if name == "filter":  # deepObject, sent as cmsdials' OMSProxyClient does
        return [("filter[run_number][EQ]", values["run_number"])]
    if name == "page":
        return [("page[limit]", "5")]
    return [(name, {"me_id": me_id, "me": me}.get(name) or values[name])]


def _call(dials: DialsHttp, path: str, name: str | None,
          values: dict[str, str]) -> requests.Response:
    me_id, _ = _me(path)
    url = re.sub(r"\{(\w+)\}", lambda m: {"me_id": me_id}.get(m[1]) or values[m[1]], path)
    required = [p["name"] for p in PATHS[path] if p["required"] and p["in"] == "query"]
    query = [q for r in required if r != name for q in _query(path, r, values)]
    if name == "next_token":
        first = dials.json(url.removeprefix("/api/v1/"), [*query, ("page_size", "1")])
        assert first["next"], path
        query += [("next_token", parse_qs(urlsplit(first["next"]).query)["next_token"][0])]
    elif name is not None:
        query += _query(path, name, values)
    return dials.get(dials.url + url, query, headers={"Workspace": "tracker"})


@pytest.mark.parametrize(("path", "name"), CALLS,
                         ids=[f"{p}?{n or ''}" for p, n in CALLS])
def test_documented_get_is_served(dials: DialsHttp, world_values: dict[str, str], path: str,
                                  name: str | None) -> None:
    r = _call(dials, path, name, world_values)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    body = r.json()
    if any(part in path for part in NOT_PAGED):
        assert body, r.url
    else:
        results = body if isinstance(body, list) else body.get("results", [body])
        assert results and all(results), r.url  # valid values select rows, fields keep some


def test_contract_records_every_get_of_the_openapi_file() -> None:
    if not SHARED_OPENAPI.exists():
        pytest.skip("shared reference not available on this machine")
    spec = json.loads(SHARED_OPENAPI.read_text())
    recorded = {path: sorted(p["name"] for p in params) for path, params in PATHS.items()}
    assert recorded == {path: sorted(p["name"] for p in ops["get"].get("parameters", []))
                        for path, ops in spec["paths"].items() if "get" in ops}
    assert len(PATHS) == 31


# --------------------------------------------------------------------------- junk

PARAM_NAMES = sorted({p["name"] for params in PATHS.values() for p in params}
                     | {"ls_numbet__lte", "order_by", "o", "x"})
JUNK = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.sampled_from(["", "9" * 5000, "-1", "0", "1e999999", "NaN", "inf", "1.5", "(", "[",
                     r"\\", "+", "a{99999}", "[[:digit:]]", "%", "\u2603", "\x00", ",,", "true",
                     "Y3Vyc29y", "cD0lNUIlMjJ4JTIyJTVE", "cj0xJnA9JTVCJTVE", "bz0tMQ=="]),
)
SEGMENT = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str),
                    st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=1,
                            max_size=12))
HEADER_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " ._-=+/", max_size=60)


def _regex_verdict(params: dict[str, str]) -> int | None:
    """500 when PostgreSQL would reject a `__regex` value, 501 when the emulator cannot run
    it (docs/emulator.md "Regex dialect"), else None."""
    for key, value in params.items():
        if key.endswith("__regex") and value:
            try:
                compile_are(value)
            except PgRegexError:
                return 500
            except Unsupported:
                return 501
    return None


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(sorted(PATHS)), segments=st.lists(SEGMENT, min_size=5, max_size=5),
       params=st.dictionaries(st.sampled_from(PARAM_NAMES), JUNK, max_size=5),
       workspace=st.sampled_from([None, "tracker", "ecal", "csc", "jetmet", "nope", ""]))
def test_junk_gets_an_answer(dials: DialsHttp, path: str, segments: list[str],
                             params: dict[str, str], workspace: str | None) -> None:
    values = iter(segments)
    url = dials.url + re.sub(r"\{\w+\}", lambda m: next(values), path)
    headers = {} if workspace is None else {"Workspace": workspace}
    r = dials.get(url, params, headers, allow_redirects=False)
    if r.status_code >= 500:  # an invalid regex or an OMS error behind the oms-proxy
        proxied = "/oms-proxy/" in path
        assert r.status_code in (_regex_verdict(params), 500 if proxied else None), (
            r.url, r.text[:300])
        if r.status_code == 500:
            assert "Server Error (500)" in r.text
        return
    assert r.status_code in (200, 301, 400, 404), (r.status_code, r.url, r.text[:300])


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scheme=st.sampled_from(["Bearer ", "Bearer", "Basic ", "", "bearer "]),
       token=HEADER_TEXT, secret=st.one_of(st.none(), HEADER_TEXT))
def test_junk_credentials_are_refused(emulator: EmulatorProcess, scheme: str, token: str,
                                      secret: str | None) -> None:
    headers = {"Authorization": (scheme + token).strip()}
    if secret is not None:
        headers["X-CLIENT-SECRET"] = secret.strip()
    r = requests.get(f"{emulator.url}/api/v1/th2/", headers=headers, timeout=10)
    assert r.status_code == 403, r.text
    assert r.json()["code"] in {"authorization_not_found", "token_not_valid",
                                "access_token_invalid_jws_signature", "access_token_expired",
                                "access_token_unexpected_error"}


def test_huge_pages_and_bad_cursors(dials: DialsHttp) -> None:
    assert len(dials.json("th1/", {"page_size": "9" * 400})["results"]) == 500
    for token in ("cD0=", "cD0lNUIlNUQ=", "bz0tMQ==", "\u2603", "abc"):
        r = dials.get("th2/", {"next_token": token})
        assert (r.status_code, r.json()) == (404, {"detail": "Invalid cursor"}), token
    # Like DRF's lenient b64decode, characters outside base64 are dropped: '%%%' is ''.
    assert dials.get("th2/", {"next_token": "%%%"}).json()["previous"] is None


def test_still_healthy_after_junk(emulator: EmulatorProcess) -> None:
    r = requests.get(f"{emulator.url}/_emulator/health", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok"
