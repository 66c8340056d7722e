"""The unmodified cmsdials 2.4.1 client against the DIALS and Keycloak twins.

If cmsdials works here, scripts built on it (pixelae, dialstools, DQMExplore) work against
the emulator with only base URLs changed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from cmsdials import Dials
from cmsdials.auth import client_credentials, device
from cmsdials.auth.client import AuthClient
from cmsdials.filters import (
    DatasetIndexFilters,
    FileIndexFilters,
    LumisectionHistogram1DFilters,
    LumisectionHistogram2DFilters,
    MEFilters,
    MLBadLumisectionFilters,
    OMSFilter,
    OMSPage,
    RunFilters,
)

from dialsflow_emulator.process import EmulatorProcess

from .test_dials_api import EXPRESS, ZERO_BIAS, expand, runs_in_dials


def credentials(emu: EmulatorProcess) -> client_credentials.Credentials:
    conn = emu.connections()["dials_default"]
    auth = AuthClient(keycloak_url=emu.url + "/auth/")
    return client_credentials.Credentials(conn["login"], conn["password"], client=auth)


def dials_for(emu: EmulatorProcess, creds, workspace: str | None = "tracker") -> Dials:
    return Dials(creds, workspace=workspace, base_url=emu.url + "/")


@pytest.fixture(scope="module")
def dials(emulator: EmulatorProcess) -> Dials:
    return dials_for(emulator, credentials(emulator))


def test_dataset_regex(dials: Dials, truth: dict) -> None:
    found = dials.dataset_index.list_all(DatasetIndexFilters(dataset__regex="ZeroBias"))
    assert [d.dataset_id for d in found.results] == [ZERO_BIAS]
    assert found.results[0].dataset == next(
        d["dataset"] for d in truth["datasets"] if d["dataset_id"] == ZERO_BIAS)
    everything = dials.dataset_index.list_all(DatasetIndexFilters(page_size=1))
    assert [d.dataset_id for d in everything.results] == [EXPRESS, ZERO_BIAS]


def test_regex_filters_are_postgresql_regexes(dials: Dials) -> None:
    """`__regex` is PostgreSQL's `~`: `\\y` is a word boundary, `\\b` a backspace, and
    Python-only syntax is a database error, which DIALS answers with Django's HTML 500."""
    zero_bias = {d.dataset_id for d in dials.dataset_index.list_all(
        DatasetIndexFilters(dataset__regex="/ZeroBias/")).results}
    assert ZERO_BIAS in zero_bias
    words = dials.dataset_index.list_all(DatasetIndexFilters(dataset__regex=r"\yZeroBias\y"))
    assert {d.dataset_id for d in words.results} == zero_bias
    backspace = dials.dataset_index.list_all(DatasetIndexFilters(dataset__regex=r"\bZeroBias"))
    assert backspace.results == []
    with pytest.raises(requests.HTTPError) as err:
        dials.dataset_index.list_all(DatasetIndexFilters(dataset__regex="(?P<x>Zero)"))
    answer = err.value.response
    assert answer.status_code == 500
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "<title>Server Error (500)</title>" in answer.text


def test_runs_of_a_dataset(dials: Dials, truth: dict) -> None:
    expected = runs_in_dials(truth, ZERO_BIAS)
    runs = dials.run.list_all(RunFilters(dataset_id=ZERO_BIAS, page_size=7)).results
    assert {r.run_number: r.ls_count for r in runs} == {
        run: len(lss) for run, lss in expected.items()}
    assert all(r.ls_completeness is not None and 0 < r.ls_completeness <= 1 for r in runs)


def _histogram_rows(client, filters) -> list[dict]:
    return [row.model_dump() for row in client.list_all(filters).results]


def test_th1_list_all_is_the_same_at_any_page_size(dials: Dials, truth: dict) -> None:
    runs = sorted(runs_in_dials(truth, ZERO_BIAS))[:4]
    common = {"dataset__regex": "ZeroBias", "run_number__gte": runs[0],
              "run_number__lte": runs[-1], "me__regex": "charge_PXLayer_",
              "ls_numbet__lte": 3}  # cmsdials' typo: the server must ignore it
    small = _histogram_rows(dials.h1d, LumisectionHistogram1DFilters(**common, page_size=10))
    large = _histogram_rows(dials.h1d, LumisectionHistogram1DFilters(**common, page_size=500))
    assert small == large
    expected = runs_in_dials(truth, ZERO_BIAS)
    assert len(small) == 2 * sum(len(expected[r]) for r in runs)  # charge_PXLayer_1 and _2
    keys = [(r["run_number"], r["ls_number"], r["me_id"]) for r in small]
    assert keys == sorted(keys)
    assert all(len(r["data"]) == 100 == r["x_bin"] for r in small)


def test_th2_list_all_is_the_same_at_any_page_size(dials: Dials, truth: dict) -> None:
    expected = runs_in_dials(truth, EXPRESS)
    runs = sorted(expected)[1:3]
    common = {"dataset_id": EXPRESS, "run_number__gte": runs[0], "run_number__lte": runs[1],
              "me": "PixelPhase1/Phase1_MechanicalView/PXBarrel/"
                    "digi_occupancy_per_SignedModuleCoord_per_SignedLadderCoord_PXLayer_1"}
    small = _histogram_rows(dials.h2d, LumisectionHistogram2DFilters(**common, page_size=10))
    large = _histogram_rows(dials.h2d, LumisectionHistogram2DFilters(**common, page_size=500))
    assert small == large
    assert [(r["run_number"], r["ls_number"]) for r in small] == [
        (run, ls) for run in runs for ls in expected[run]]
    first = small[0]
    assert (len(first["data"]), len(first["data"][0])) == (first["y_bin"], first["x_bin"])


def test_monitoring_elements(dials: Dials, truth: dict) -> None:
    mes = dials.mes.list()
    assert [m.me for m in mes] == [m["me"] for m in truth["workspaces"]["tracker"]["mes"]]
    assert all(m.count > 0 for m in mes)
    two_d = dials.mes.list(MEFilters(dim=2))
    assert two_d and {m.dim for m in two_d} == {2}
    assert dials.mes.get(5).me == "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"


def test_get_by_key(dials: Dials, truth: dict) -> None:
    run, lss = next(iter(runs_in_dials(truth, ZERO_BIAS).items()))
    ls = lss[-1]
    h1 = dials.h1d.get(ZERO_BIAS, run, ls, 5)
    listed = dials.h1d.list(LumisectionHistogram1DFilters(
        dataset_id=ZERO_BIAS, run_number=run, ls_number=ls, me_id=5)).results
    assert listed == [h1]
    h2 = dials.h2d.get(ZERO_BIAS, run, ls, 15682)
    assert (h2.run_number, h2.ls_number, h2.me_id, h2.y_bin) == (run, ls, 15682, 26)
    assert dials.run.get(ZERO_BIAS, run).ls_count == len(lss)
    lumi = dials.lumi.get(ZERO_BIAS, run, ls)
    assert (lumi.th1_count, lumi.th2_count) == (5, 3)


def test_files_workspaces_and_ml(dials: Dials, truth: dict) -> None:
    files = dials.file_index.list_all(FileIndexFilters(dataset_id=ZERO_BIAS,
                                                       status="COPY_ERROR")).results
    assert len(files) == 1 and files[0].err_trace
    assert "tracker" in dials.workspace.list()["workspaces"]
    assert dials.workspace.my_workspace() == {"workspace": "tracker"}
    models = dials.ml_models_index.list().results
    assert {m.id for m in models} == {1, 2}
    bad = dials.ml_bad_lumis.list_all(MLBadLumisectionFilters(
        model_id=1, dataset_id=ZERO_BIAS), max_pages=3).results
    assert bad and {b.model_id for b in bad} == {1}
    run = bad[0].run_number
    cert = dials.ml_bad_lumis.cert_json([1], [ZERO_BIAS], [run])
    assert str(bad[0].ls_number) in cert[str(run)]
    golden = dials.ml_bad_lumis.golden_json([1], [ZERO_BIAS], [run])
    assert bad[0].ls_number not in expand(golden[str(run)])


def test_unknown_workspace_is_an_http_404(emulator: EmulatorProcess, dials: Dials) -> None:
    lost = dials_for(emulator, dials.run.creds, workspace="nonexistent")
    with pytest.raises(requests.HTTPError) as err:
        lost.run.list()
    assert err.value.response.status_code == 404
    assert err.value.response.json() == {"detail": "Workspace 'nonexistent' not found"}


def test_wrong_secret_fails_when_creating_credentials(emulator: EmulatorProcess) -> None:
    auth = AuthClient(keycloak_url=emulator.url + "/auth/")
    login = emulator.connections()["dials_default"]["login"]
    with pytest.raises(requests.HTTPError) as err:
        client_credentials.Credentials(login, "wrong-secret", client=auth)
    assert err.value.response.status_code == 401


def test_tokens_are_renewed_after_expiry(tmp_path: Path) -> None:
    """Both credential kinds outlive a 3 s token lifetime: cmsdials refreshes them."""
    with EmulatorProcess("--token-ttl", "3") as emu:
        auth = AuthClient(keycloak_url=emu.url + "/auth/")
        code = auth.new_device().device_code
        user = device.Credentials.from_authclient_token(auth.device_token(code),
                                                        cache_dir=str(tmp_path), client=auth)
        assert (tmp_path / "creds").exists()
        app = credentials(emu)
        clients = [dials_for(emu, user), dials_for(emu, app)]
        before = [user.token, app.token]
        for client in clients:
            assert client.dataset_index.list().results
        time.sleep(3.5)
        for client in clients:
            assert client.run.list(RunFilters(page_size=2)).results
        assert [user.token, app.token] != before
        assert user.token != before[0] and app.token != before[1]


def test_device_flow_through_dials_new_device(emulator: EmulatorProcess,
                                              tmp_path: Path) -> None:
    """DIALS' own auth/new-device/ hands out a code the Keycloak twin accepts."""
    new = requests.get(f"{emulator.url}/api/v1/auth/new-device/", timeout=10).json()
    auth = AuthClient(keycloak_url=emulator.url + "/auth/")
    token = auth.device_token(new["device_code"])
    creds = device.Credentials(
        token=token.access_token, expires_at=token.expires_at, expires_in=token.expires_in,
        refresh_expires_at=token.refresh_expires_at,
        refresh_expires_in=token.refresh_expires_in, refresh_token=token.refresh_token,
        token_type=token.token_type, cache_dir=str(tmp_path), client=auth)
    assert creds.token_type == "Bearer"
    assert dials_for(emulator, creds).mes.list()


def test_oms_proxy(dials: Dials, truth: dict) -> None:
    run = truth["runs"][3]["run_number"]
    answer = dials.oms.query("runs", [OMSFilter(attribute_name="run_number", value=run,
                                                operator="EQ")],
                             [OMSPage(attribute_name="limit", value=5)])
    assert isinstance(answer, dict) and answer["data"]
