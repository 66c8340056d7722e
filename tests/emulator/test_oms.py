"""The OMS twin driven by the unmodified omsapi 0.9.8.1 client, and by plain requests for what
omsapi cannot send (raw query variants, missing tokens, another clock)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from fnmatch import fnmatch

import omsapi
import pytest
import requests
from omsapi import OMSAPI

from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.state import DIALS_AUDIENCE, OMS_AUDIENCE
from dialsflow_emulator.world.basics import LS_SECONDS, iso, utc

TOKEN_PATH = "/auth/realms/cern/api-access/token"


# --------------------------------------------------------------------------- helpers


def _client(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> OMSAPI:
    """omsapi as a user sets it up, with only its token URL and API URL repointed."""
    monkeypatch.setattr(omsapi, "cern_api_url", emu.url + TOKEN_PATH)
    conn = emu.connections()["oms_default"]
    api = OMSAPI(api_url=conn["host"], cert_verify=False, verbose=False)
    api.auth_oidc(conn["login"], conn["password"])
    return api


def _token(emu: EmulatorProcess, audience: str = OMS_AUDIENCE) -> str:
    conn = emu.connections()["oms_default"]
    r = requests.post(emu.url + TOKEN_PATH, timeout=10, data={
        "grant_type": "client_credentials", "client_id": conn["login"],
        "client_secret": conn["password"], "audience": audience})
    r.raise_for_status()
    return r.json()["access_token"]


def _get(emu: EmulatorProcess, path_and_query: str, token: str | None, **headers: str):
    """GET a URL string as given (brackets and '+' stay raw, as omsapi sends them)."""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(f"{emu.url}/agg/api/v1/{path_and_query}", headers=headers, timeout=30)


def _follow(q, body: dict) -> Iterator[dict]:
    """Every page of a query, following links.next with the client's own session."""
    while True:
        yield body
        if body["links"]["next"] is None:
            return
        body = q.get_request(body["links"]["next"], verify=False).json()


def _served_ls(truth: dict, run: dict) -> list[int]:
    """The LS numbers OMS has rows for: 1..n_ls without the planted missing LS."""
    missing = set(truth["planted"]["oms_missing_ls"].get(str(run["run_number"]), []))
    return [ls for ls in range(1, run["n_ls"] + 1) if ls not in missing]


def _nulls(truth: dict, run: int, kind: str) -> set[int]:
    cells = truth["planted"]["oms_null_ls"].get(str(run), {})
    return {int(ls) for ls, k in cells.items() if k == kind}


@pytest.fixture
def oms(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> OMSAPI:
    return _client(emulator, monkeypatch)


@pytest.fixture(scope="module")
def token(emulator: EmulatorProcess) -> str:
    return _token(emulator)


# --------------------------------------------------------------------------- omsapi


def test_end_time_window_paged_through_next_links_equals_truth(oms: OMSAPI, truth: dict):
    ended = [r for r in truth["runs"] if r["ended"]]
    t0, t1 = ended[5]["end_time"], ended[17]["end_time"]
    expected = [r for r in ended if utc(t0) <= utc(r["end_time"]) < utc(t1)]
    q = oms.query("runs")
    q.filter("end_time", t0, "GE").filter("end_time", t1, "LT").sort("run_number")
    first = q.paginate(page=1, per_page=4).data().json()
    pages = list(_follow(q, first))
    rows = [item["attributes"] for page in pages for item in page["data"]]
    assert len(pages) == -(-len(expected) // 4) > 1
    assert first["meta"]["totalResourceCount"] == len(expected)
    assert [r["run_number"] for r in rows] == [r["run_number"] for r in expected]
    assert [r["end_time"] for r in rows] == [r["end_time"] for r in expected]
    assert [r["fill_number"] for r in rows] == [r["fill_number"] for r in expected]
    assert all(item["id"] == str(item["attributes"]["run_number"])
               for page in pages for item in page["data"])


def test_lumisections_of_a_run_match_the_run(oms: OMSAPI, truth: dict):
    run = next(r for r in truth["runs"] if r["stable_beam"] and r["n_ls"] > 30)
    q = oms.query("lumisections").filter("run_number", run["run_number"])
    body = q.paginate(per_page=10_000).data().json()
    rows = [item["attributes"] for item in body["data"]]
    assert [r["lumisection_number"] for r in rows] == _served_ls(truth, run)
    number = run["run_number"]
    assert [item["id"] for item in body["data"]] == [f"{number}_{r['lumisection_number']}"
                                                     for r in rows]
    assert rows[0]["start_time"] == run["start_time"]
    blank = _nulls(truth, run["run_number"], "lumi")
    assert all(r["beams_stable"] and r["cms_active"] for r in rows)
    assert all(r["pileup"] > 0 for r in rows if r["lumisection_number"] not in blank)
    cumulative = [r["recorded_lumi"] for r in rows]
    assert cumulative == sorted(cumulative) and cumulative[-1] > 0
    assert body["data"][0]["meta"]["row"]["recorded_lumi"] == {"units": "pb^{-1}"}
    # the run row agrees with its lumisections
    (summary,) = oms.query("runs").filter("run_number", run["run_number"]).data().json()["data"]
    assert summary["attributes"]["last_lumisection_number"] == run["n_ls"]
    assert summary["attributes"]["recorded_lumi"] == pytest.approx(cumulative[-1])


def test_tracker_dcs_bits_follow_the_dcs_only_json(oms: OMSAPI, emulator: EmulatorProcess,
                                                   truth: dict):
    """LS outside the published DCS-only ranges have the tracker off; inside it is ready."""
    dcs_path = max((f for f in truth["certification"]["files"] if "dailyDCS" in f["path"]),
                   key=lambda f: f["published_at"])["path"]
    dcs = requests.get(f"{emulator.url}/CAF/certification/{dcs_path}", timeout=10).json()
    run, ((first, last),) = next((int(k), v) for k, v in dcs.items() if v[0][0] > 1)
    q = oms.query("lumisections").filter("run_number", run).attrs(
        ["lumisection_number", "bpix_ready", "tob_ready", "physics_flag"])
    rows = [d["attributes"] for d in q.paginate(per_page=5000).data().json()["data"]]
    blank = _nulls(truth, run, "dcs")
    for row in rows:
        if row["lumisection_number"] in blank:
            assert row["bpix_ready"] is row["tob_ready"] is None
            continue
        inside = first <= row["lumisection_number"] <= last
        assert row["bpix_ready"] is row["tob_ready"] is row["physics_flag"] is inside


def test_fields_projection_keeps_only_those_attributes_and_units(oms: OMSAPI):
    q = oms.query("runs").attrs(["run_number", "recorded_lumi"]).paginate(per_page=3)
    data = q.data().json()["data"]
    assert len(data) == 3
    assert all(set(d["attributes"]) == {"run_number", "recorded_lumi"} for d in data)
    assert all(d["meta"]["row"] == {"recorded_lumi": {"units": "pb^{-1}"}} for d in data)


def test_sort_descending_gives_the_latest_runs_first(oms: OMSAPI, truth: dict):
    q = oms.query("runs").sort("run_number", asc=False).paginate(page=1, per_page=5)
    got = [d["attributes"]["run_number"] for d in q.data().json()["data"]]
    assert got == sorted((r["run_number"] for r in truth["runs"]), reverse=True)[:5]


def test_meta_lists_every_attribute_with_its_description(oms: OMSAPI):
    q = oms.query("runs")
    fields = q.meta()
    for name in ("run_number", "end_time", "recorded_lumi", "stable_beam", "components",
                 "sequence", "energy"):
        assert {"title", "description", "api_type", "units", "sortable", "searchable",
                "projectable"} <= set(fields[name])
    assert fields["recorded_lumi"]["units"] == "pb^{-1}"
    with_meta = q.include("meta").paginate(per_page=1).data().json()
    assert with_meta["meta"]["fields"] == fields
    assert with_meta["meta"]["fields_order"][0] == "run_number"
    assert "era" not in fields  # real run records carry none (docs/reference/oms.md §6.1)
    assert "era" in oms.query("fills").meta()


def test_runs_have_no_era_and_report_their_energy(oms: OMSAPI, truth: dict):
    rows = [d["attributes"] for d in
            oms.query("runs").paginate(per_page=1000).data().json()["data"]]
    assert rows and all("era" not in r for r in rows)
    assert {r["run_number"]: r["energy"] for r in rows} == \
        {r["run_number"]: r["energy"] for r in truth["runs"] if r["start_time"] <= truth["now"]}
    special = set(truth["planted"]["special_energy_runs"])
    assert {r["energy"] for r in rows if r["run_number"] in special} == {450, 2680}
    assert {r["energy"] for r in rows if r["stable_beam"] and r["run_number"] not in special} \
        == {6800}
    fills = [d["attributes"] for d in
             oms.query("fills").paginate(per_page=1000).data().json()["data"]]
    assert [f["energy"] for f in fills] == [f["energy"] for f in truth["fills"]]


def test_filtering_on_era_is_refused(emulator: EmulatorProcess, token: str):
    r = _get(emulator, "runs?filter[era][EQ]=Run2024C", token)
    assert r.status_code == 400 and "era" in r.json()["errors"][0]["detail"]


def test_fills_follow_the_world(oms: OMSAPI, truth: dict):
    body = oms.query("fills").paginate(per_page=1000).data().json()
    assert [d["attributes"]["fill_number"] for d in body["data"]] == \
        [f["fill_number"] for f in truth["fills"]]
    fill = body["data"][1]["attributes"]
    runs = [r["run_number"] for r in truth["runs"] if r["fill_number"] == fill["fill_number"]]
    assert (fill["first_run_number"], fill["last_run_number"]) == (min(runs), max(runs))
    assert fill["end_time"] == truth["fills"][1]["end_time"]
    assert 0 < fill["recorded_lumi"] < fill["delivered_lumi"]


# --------------------------------------------------------------------------- raw queries


def test_an_ongoing_run_has_no_end_yet(emulator: EmulatorProcess, token: str, truth: dict):
    run = next(r for r in truth["runs"][8:] if r["n_ls"] > 20)
    now = utc(run["start_time"]) + timedelta(seconds=LS_SECONDS * run["n_ls"] / 2)
    clock = {"X-Emulator-Now": iso(now)}
    body = _get(emulator, "runs?page[limit]=1000", token, **clock).json()
    started = [r["run_number"] for r in truth["runs"] if utc(r["start_time"]) <= now]
    assert [d["attributes"]["run_number"] for d in body["data"]] == started
    ongoing = body["data"][-1]["attributes"]
    assert ongoing["run_number"] == run["run_number"]
    assert ongoing["end_time"] is None and ongoing["duration"] is None
    assert 0 < ongoing["last_lumisection_number"] < run["n_ls"]
    open_runs = _get(emulator, "runs?filter[end_time][EQ]=null", token, **clock).json()
    assert [d["id"] for d in open_runs["data"]] == [str(run["run_number"])]
    ls = _get(emulator, f"lumisections?filter[run_number]={run['run_number']}&page[limit]=5000",
              token, **clock).json()
    assert ls["meta"]["totalResourceCount"] == ongoing["last_lumisection_number"]


@pytest.mark.parametrize("bound", [
    "2024-04-18T00:00:00Z", "2024-04-18T00:00:00", "2024-04-18T00:00", "2024-04-18 00:00:00",
    "2024-04-18T00:00:00.000000+00:00",  # isoformat() sent raw: '+' arrives as a space
    "2024-04-18T02:00:00%2B02:00", "2024-04-17T19:00:00-05:00",
])
def test_datetime_filters_are_parsed_leniently(emulator: EmulatorProcess, token: str,
                                               truth: dict, bound: str):
    expected = [str(r["run_number"]) for r in truth["runs"]
                if r["ended"] and utc(r["end_time"]) < utc("2024-04-18T00:00:00Z")]
    body = _get(emulator, f"runs?filter[end_time][LT]={bound}&page[limit]=1000", token).json()
    assert [d["id"] for d in body["data"]] == expected


@pytest.mark.parametrize("query", [
    "filter[run_number][GE]={run}&filter[run_number][LE]={run}",
    "filter%5Brun_number%5D%5BGE%5D={run}&filter%5Brun_number%5D%5BLE%5D={run}",
    "filter[run_number][eq]={run}", "filter[run_number]={run}",
    "filter[run_number][EQ]={run}&filter[stable_beam][EQ]=True&fields[runs]=run_number",
    "filter[run_number][EQ]={run}&filter[hlt_key][LIKE]=%25Run2024%25"
    "&sort=-fill_number,run_number",
    "filter[run_number][EQ]={run}&filter[components][CT]=TRACKER",
])
def test_filter_spellings_select_the_same_run(emulator: EmulatorProcess, token: str,
                                              truth: dict, query: str):
    run = next(r["run_number"] for r in truth["runs"] if r["stable_beam"])
    body = _get(emulator, "runs?" + query.format(run=run), token).json()
    assert [d["id"] for d in body["data"]] == [str(run)]


def test_booleans_and_inequality(emulator: EmulatorProcess, token: str, truth: dict):
    not_stable = [str(r["run_number"]) for r in truth["runs"] if not r["stable_beam"]]
    for value in ("false", "FALSE", "False"):
        body = _get(emulator, f"runs?filter[stable_beam]={value}&page[limit]=1000", token).json()
        assert [d["id"] for d in body["data"]] == not_stable
    body = _get(emulator, "runs?filter[stable_beam][NEQ]=true&page[limit]=1000", token).json()
    assert [d["id"] for d in body["data"]] == not_stable
    assert not_stable


@pytest.mark.parametrize(("path", "status", "detail"), [
    ("runs?filter[no_such][EQ]=1", 400, "no_such"),
    ("runs?sort=-no_such", 400, "no_such"),
    ("runs?filter[run_number][XX]=1", 400, "operator"),
    ("runs?filter[run_number][GE]=abc", 400, "abc"),
    ("runs?filter[start_time][GE]=yesterday", 400, "yesterday"),
    ("runs?page[limit]=-5", 400, "page[limit]"),
    ("nosuchresource", 404, "nosuchresource"),
    ("runs/1", 404, "1"),
])
def test_errors_are_json_api_bodies(emulator: EmulatorProcess, token: str, path: str,
                                    status: int, detail: str):
    r = _get(emulator, path, token)
    assert r.status_code == status
    (error,) = r.json()["errors"]
    assert error["status"] == str(status) and detail in error["detail"]


def test_trailing_slash_single_object_and_paging_defaults(emulator: EmulatorProcess,
                                                          token: str, truth: dict):
    body = _get(emulator, "lumisections/", token).json()
    assert len(body["data"]) == 100  # the server's default page size
    assert body["links"]["prev"] is None and "page[offset]=100" in body["links"]["next"]
    run = truth["runs"][0]["run_number"]
    one = _get(emulator, f"lumisections/{run}_7", token).json()["data"]
    assert one["id"] == f"{run}_7" and one["attributes"]["lumisection_number"] == 7
    assert _get(emulator, "runs/meta/", token).json()["meta"]["fields"]["run_number"]


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("path", ["runs", "runs/meta", "lumisections?page[limit]=1"])
def test_data_and_meta_need_an_oms_token(emulator: EmulatorProcess, path: str):
    for token in (None, "not-a-jwt", _token(emulator, DIALS_AUDIENCE)):
        r = _get(emulator, path, token)
        assert r.status_code == 401
        assert not r.headers["content-type"].startswith("application/json")
        with pytest.raises(requests.JSONDecodeError):
            r.json()


def test_expired_token_is_refused_and_omsapi_renews_it(monkeypatch: pytest.MonkeyPatch):
    """omsapi renews on a 401 but never twice within 30 s; the test moves the client's
    record of its last renewal back instead of sleeping 30 s."""
    with EmulatorProcess("--token-ttl", "2") as emu:
        api = _client(emu, monkeypatch)
        q = api.query("runs").paginate(per_page=1)
        assert q.data().status_code == 200
        first = api.oms_auth.token_json["access_token"]
        time.sleep(2.2)
        assert _get(emu, "runs", first).status_code == 401
        # within 30 s of the last token request omsapi keeps the old token: 401 to the caller
        assert q.data().status_code == 401
        assert api.oms_auth.token_json["access_token"] == first
        api.oms_auth.token_time -= 31
        r = q.data()  # 401 -> auth_oidc() -> retried once with the new token
        assert r.status_code == 200 and len(r.json()["data"]) == 1
        assert api.oms_auth.token_json["access_token"] != first


def test_dials_oms_proxy_serves_the_same_query(emulator: EmulatorProcess, token: str,
                                               truth: dict):
    run = truth["runs"][3]["run_number"]
    query = f"filter[run_number][EQ]={run}&page[limit]=5"
    direct = _get(emulator, f"runs?{query}", token).json()
    r = requests.get(f"{emulator.url}/api/v1/oms-proxy/?endpoint=runs&{query}", timeout=30,
                     headers={"Authorization": f"Bearer {_token(emulator, DIALS_AUDIENCE)}"})
    assert r.status_code == 200
    assert r.json()["data"] == direct["data"]


# --------------------------------------------------------------------------- trigger rates


def _collision_run(oms: OMSAPI, truth: dict) -> dict:
    """An ended run of > 30 LS in a physics fill (not the demo's first, 2-bunch fill)."""
    q = oms.query("runs").filter("stable_beam", "true").filter("init_lumi", 1, "GT")
    bright = {d["attributes"]["run_number"] for d in
              q.attrs(["run_number"]).paginate(per_page=1000).data().json()["data"]}
    return next(r for r in truth["runs"]
                if r["run_number"] in bright and r["ended"] and r["n_ls"] > 30)


def _zerobias(oms: OMSAPI, run: int) -> tuple[str, int]:
    """pixelae's resolution of `HLT_ZeroBias_v*`: hltpathinfo's path names, fnmatch."""
    body = oms.query("hltpathinfo").filter("run_number", run).attrs(
        ["path_name", "path_id"]).paginate(per_page=5000).data().json()
    (match,) = [d["attributes"] for d in body["data"]
                if fnmatch(d["attributes"]["path_name"], "HLT_ZeroBias_v*")]
    return match["path_name"], match["path_id"]


def _path_rates(oms: OMSAPI, run: int, path: str) -> list[dict]:
    q = oms.query("hltpathrates").filter("run_number", run).filter("path_name", path)
    q.custom("group[granularity]", "lumisection")
    return [d["attributes"] for d in q.paginate(per_page=5000).data().json()["data"]]


def test_zerobias_rate_per_lumisection_as_pixelae_fetches_it(oms: OMSAPI, truth: dict):
    run = _collision_run(oms, truth)
    number = run["run_number"]
    name, path_id = _zerobias(oms, number)
    assert re.fullmatch(r"HLT_ZeroBias_v\d+", name)
    rows = _path_rates(oms, number, name)
    assert [r["first_lumisection_number"] for r in rows] == _served_ls(truth, run)
    assert [r["last_lumisection_number"] for r in rows] == _served_ls(truth, run)
    assert {(r["run_number"], r["path_id"], r["path_name"]) for r in rows} == \
        {(number, path_id, name)}
    assert all(r["rate"] > 5 and r["rate"] == pytest.approx(r["counter"] / LS_SECONDS,
                                                            abs=1e-3) for r in rows)
    # ZeroBias ∝ colliding bunches: the same within a run up to a few per cent
    rates = [r["rate"] for r in rows]
    assert max(rates) / min(rates) < 1.05
    meta = oms.query("hltpathrates").filter("run_number", number).filter(
        "path_id", path_id).paginate(per_page=1).data().json()["data"][0]["meta"]
    assert meta["row"]["rate"] == {"units": "Hz"}


def test_physics_path_rate_follows_the_lumisections_luminosity(oms: OMSAPI, truth: dict):
    run = _collision_run(oms, truth)
    number = run["run_number"]
    paths = oms.query("hltpathinfo").filter("run_number", number).data().json()["data"]
    (muon,) = [d["attributes"]["path_name"] for d in paths
               if d["attributes"]["path_name"].startswith("HLT_IsoMu24_v")]
    rates = {r["first_lumisection_number"]: r["rate"] for r in _path_rates(oms, number, muon)}
    ls = oms.query("lumisections").filter("run_number", number).attrs(
        ["lumisection_number", "init_lumi"]).paginate(per_page=5000).data().json()["data"]
    ratios = [rates[d["attributes"]["lumisection_number"]] / d["attributes"]["init_lumi"]
              for d in ls]
    assert len(ratios) == len(_served_ls(truth, run)) and max(ratios) / min(ratios) < 1.05


def test_no_rate_without_stable_beams(oms: OMSAPI, truth: dict):
    run = next(r for r in truth["runs"] if not r["stable_beam"] and r["n_ls"] > 0)
    name, _ = _zerobias(oms, run["run_number"])
    rows = _path_rates(oms, run["run_number"], name)
    assert len(rows) == run["n_ls"]
    assert all(r["rate"] == 0 and r["counter"] == 0 for r in rows)
    q = oms.query("datasetrates").filter("run_number", run["run_number"]).filter(
        "dataset_name", "ZeroBias").paginate(per_page=5000)
    data = q.data().json()["data"]
    assert len(data) == run["n_ls"] and all(d["attributes"]["rate"] == 0 for d in data)


def test_zerobias_dataset_rate_as_dqmexplore_fetches_it(oms: OMSAPI, truth: dict):
    run = _collision_run(oms, truth)
    number = run["run_number"]
    q = oms.query("datasetrates").filter("run_number", number).filter(
        "dataset_name", "ZeroBias").paginate(per_page=5000)
    body = q.data().json()
    rows = sorted((d["attributes"] for d in body["data"]),
                  key=lambda r: r["last_lumisection_number"])
    served = _served_ls(truth, run)
    assert body["meta"]["totalResourceCount"] == len(served)
    assert [r["first_lumisection_number"] for r in rows] == served
    assert [r["last_lumisection_in_run"] for r in rows] == [ls == run["n_ls"] for ls in served]
    assert all(r["cms_active"] and r["dataset_name"] == "ZeroBias" for r in rows)
    assert body["data"][0]["id"] == f"{number}_ZeroBias_1"
    assert body["data"][0]["meta"]["row"] == {"rate": {"units": "Hz"}}
    # the dataset's events are its paths' accepts (HLT_ZeroBias_v* and the abort-gap path)
    paths = oms.query("hltpathinfo").filter("run_number", number).data().json()["data"]
    zb = [d["attributes"]["path_name"] for d in paths
          if d["attributes"]["path_name"].startswith("HLT_ZeroBias")]
    counters = [_path_rates(oms, number, p) for p in zb]
    assert len(zb) == 2
    assert [r["events"] for r in rows] == [sum(c[i]["counter"] for c in counters)
                                           for i in range(len(served))]
    assert all(r["rate"] == pytest.approx(r["events"] / LS_SECONDS, abs=1e-3) for r in rows)


def test_rates_of_one_lumisection_over_all_paths(emulator: EmulatorProcess, token: str,
                                                 truth: dict):
    """RateMon's query: every path of a run, `filter[last_lumisection_number]=N`."""
    run = next(r for r in truth["runs"] if r["stable_beam"] and r["n_ls"] > 30)["run_number"]
    info = _get(emulator, f"hltpathinfo?filter[run_number]={run}", token).json()["data"]
    rates = _get(emulator, f"hltpathrates?filter[run_number]={run}"
                 "&filter[last_lumisection_number]=20&page[limit]=1000", token).json()["data"]
    assert [d["attributes"]["path_id"] for d in rates] == \
        [d["attributes"]["path_id"] for d in info]
    assert [d["id"] for d in info] == [f"{run}_{d['attributes']['path_id']}" for d in info]
    assert {d["attributes"]["first_lumisection_number"] for d in rates} == {20}


def test_path_names_carry_versions_and_ids_follow_the_menu(oms: OMSAPI, truth: dict):
    runs = [r["run_number"] for r in truth["runs"] if r["stable_beam"]][:4]
    for run in runs:
        data = oms.query("hltpathinfo").filter("run_number", run).data().json()["data"]
        names = [d["attributes"]["path_name"] for d in data]
        ids = [d["attributes"]["path_id"] for d in data]
        assert all(re.fullmatch(r"HLT_\w+_v\d+", n) for n in names)
        assert len(set(ids)) == len(ids) == len(names) > 3
    fields = oms.query("hltpathrates").meta()
    assert {"run_number", "path_id", "path_name", "first_lumisection_number",
            "last_lumisection_number", "rate", "counter"} <= set(fields)


@pytest.mark.parametrize(("path", "detail"), [
    ("hltpathrates?filter[run_number]=1&group[granularity]=run", "run"),
    ("datasetrates?group[granularity]=fill", "fill"),
    ("hltpathrates?group[granularity]=", "Granularity"),
    # pixelae's studies/pixel_clusters_2024/omstools/omstools.py sorts so: refused here
    ("hltpathrates?sort=lumisection_number", "lumisection_number"),
    ("datasetrates?filter[path_name]=HLT_ZeroBias_v10", "path_name"),
])
def test_rate_queries_the_twin_refuses(emulator: EmulatorProcess, token: str, path: str,
                                       detail: str):
    r = _get(emulator, path, token)
    assert r.status_code == 400
    (error,) = r.json()["errors"]
    assert error["status"] == "400" and detail in error["detail"]


def test_dials_oms_proxy_serves_datasetrates(emulator: EmulatorProcess, token: str,
                                             truth: dict):
    run = next(r for r in truth["runs"] if r["stable_beam"])["run_number"]
    query = f"filter[run_number][EQ]={run}&filter[dataset_name][EQ]=ZeroBias&page[limit]=5000"
    direct = _get(emulator, f"datasetrates?{query}", token).json()
    r = requests.get(f"{emulator.url}/api/v1/oms-proxy/?endpoint=datasetrates&{query}",
                     timeout=30,
                     headers={"Authorization": f"Bearer {_token(emulator, DIALS_AUDIENCE)}"})
    assert r.status_code == 200 and direct["data"]
    assert r.json()["data"] == direct["data"]


# --------------------------------------------------------------------------- per-LS gaps, nulls

ZEROBIAS_PROMPT = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"


def _rows(oms: OMSAPI, resource: str, run: int, **filters: str) -> list[dict]:
    q = oms.query(resource).filter("run_number", run)
    for name, value in filters.items():
        q.filter(name, value)
    if resource != "lumisections":
        q.custom("group[granularity]", "lumisection")
    return [d["attributes"] for d in q.paginate(per_page=5000).data().json()["data"]]


def test_golden_run_lacks_ls_rows_in_oms_that_dials_has(oms: OMSAPI, emulator: EmulatorProcess,
                                                        token: str, truth: dict):
    """A Golden run (so ingested by the nightly demo jobs) whose lumisections lack a stretch
    of LS, outside its certified ranges; hltpathrates and datasetrates lack the same LS;
    DIALS has maps of them; the run record still counts them."""
    planted = truth["planted"]["oms_missing_ls"]
    golden = {int(r) for r in truth["certification"]["golden_runs"]}
    number = min(int(r) for r in planted if int(r) in golden)
    run = next(r for r in truth["runs"] if r["run_number"] == number)
    gap = planted[str(number)]
    assert 1 <= len(gap) <= 3 and gap == list(range(gap[0], gap[-1] + 1))
    assert 1 < gap[0] and gap[-1] < run["n_ls"]
    certified = {ls for lo, hi in truth["certification"]["golden_runs"][str(number)]
                 for ls in range(lo, hi + 1)}
    assert not certified & set(gap)  # an LS without OMS record is never certified
    served = [ls for ls in range(1, run["n_ls"] + 1) if ls not in gap]

    ls_rows = _rows(oms, "lumisections", number)
    assert [r["lumisection_number"] for r in ls_rows] == served
    name, _ = _zerobias(oms, number)
    assert [r["first_lumisection_number"]
            for r in _rows(oms, "hltpathrates", number, path_name=name)] == served
    zb = _rows(oms, "datasetrates", number, dataset_name="ZeroBias")
    assert sorted(r["last_lumisection_number"] for r in zb) == served
    assert [r["last_lumisection_number"] for r in zb if r["last_lumisection_in_run"]] == \
        [run["n_ls"]]
    assert _get(emulator, f"lumisections/{number}_{gap[0]}", token).status_code == 404

    (summary,) = oms.query("runs").filter("run_number", number).data().json()["data"]
    assert summary["attributes"]["last_lumisection_number"] == run["n_ls"]
    assert summary["attributes"]["recorded_lumi"] == pytest.approx(ls_rows[-1]["recorded_lumi"])

    dataset = next(d for d in truth["datasets"] if d["dataset"] == ZEROBIAS_PROMPT)
    dials = {ls for lo, hi in dataset["runs"][str(number)]["dials_ls"]
             for ls in range(lo, hi + 1)}
    assert set(gap) <= dials


def test_null_cells_at_a_run_start_and_without_dcs(oms: OMSAPI, truth: dict):
    """The first LS of some runs has no pileup nor per-LS luminosity; one LS of some collision
    runs has no DCS bits; `filter[pileup][EQ]=null` finds the first kind."""
    planted = truth["planted"]["oms_null_ls"]
    lumi_run = next(int(r) for r, cells in planted.items() if cells.get("1") == "lumi")
    rows = _rows(oms, "lumisections", lumi_run)
    first, second = rows[0], rows[1]
    assert first["lumisection_number"] == 1
    assert first["pileup"] is first["delivered_lumi_per_lumisection"] is \
        first["recorded_lumi_per_lumisection"] is None
    assert first["recorded_lumi"] is not None and first["bpix_ready"] is not None
    assert second["pileup"] > 0 and second["recorded_lumi_per_lumisection"] > 0
    nulls = _rows(oms, "lumisections", lumi_run, pileup="null")
    assert [r["lumisection_number"] for r in nulls] == [1]

    dcs_run, dcs_ls = next((int(r), int(ls)) for r, cells in planted.items()
                           for ls, kind in cells.items() if kind == "dcs")
    (row,) = _rows(oms, "lumisections", dcs_run, lumisection_number=str(dcs_ls))
    ready = {k: v for k, v in row.items() if k.endswith("_ready")}
    assert len(ready) == 31 and set(ready.values()) == {None}
    assert row["pileup"] > 0 and row["beams_stable"] is True


def test_per_ls_luminosity_in_inverse_picobarn(oms: OMSAPI, truth: dict):
    """`*_lumi_per_lumisection` in pb^-1 as production serves 2022+ runs: one LS at pileup μ
    with n colliding bunches delivers μ·n·f_rev/σ_inel(80 mb)·23.31 s; pixelae's sample
    (pileup 53.6, prescale column 62b) reads 0.0109."""
    run = _collision_run(oms, truth)
    (fill,) = oms.query("fills").filter("fill_number", run["fill_number"]).attrs(
        ["bunches_colliding"]).data().json()["data"]
    bunches = fill["attributes"]["bunches_colliding"]
    body = oms.query("lumisections").filter("run_number", run["run_number"]).attrs(
        ["pileup", "delivered_lumi_per_lumisection", "recorded_lumi_per_lumisection"]
    ).paginate(per_page=5000).data().json()
    item = body["data"][5]
    assert item["meta"]["row"] == {"delivered_lumi_per_lumisection": {"units": "pb^{-1}"},
                                   "recorded_lumi_per_lumisection": {"units": "pb^{-1}"}}
    a = item["attributes"]
    expected = a["pileup"] * bunches * 11245.5 / 80e-27 * LS_SECONDS / 1e36  # cm^-2 -> pb^-1
    assert a["delivered_lumi_per_lumisection"] == pytest.approx(expected, rel=0.04)
    assert a["recorded_lumi_per_lumisection"] < a["delivered_lumi_per_lumisection"]
