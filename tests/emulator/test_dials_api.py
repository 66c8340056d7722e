"""The DIALS twin over plain HTTP: the rules of docs/reference/dials.md §1 that clients depend on.

Pagination tokens, absolute `next` links, page-size clamping, composite ordering, filters,
projection, workspaces, auth errors, Django's 301/404 behaviour, and the world clock.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests

from dialsflow_emulator.dials.cursors import Cursor, decode_cursor, encode_cursor
from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.state import DIALS_AUDIENCE, OMS_AUDIENCE
from dialsflow_emulator.world.basics import iso, utc

ZERO_BIAS = 15102369
EXPRESS = 15102368
#: docs/reference/dials.md §1: last row (dataset 15102369, run 381384, LS 10, me 15682).
REFERENCE_TOKEN = ("cD0lNUIlMjIxNTEwMjM2OSUyMiUyQyslMjIzODEzODQlMjIlMkMrJTIyMTAlMjIlMkMrJTIy"
                   "MTU2ODIlMjIlNUQ=")
REFERENCE_PLAIN = "p=%5B%2215102369%22%2C+%22381384%22%2C+%2210%22%2C+%2215682%22%5D"


# --------------------------------------------------------------------------- helpers
# (also imported by the contract tests)


def access_token(emu: EmulatorProcess, audience: str = DIALS_AUDIENCE) -> str:
    """A client-credentials token from the Keycloak twin, as cmsdials obtains one."""
    conn = emu.connections()["dials_default"]
    r = requests.post(f"{emu.url}/auth/realms/cern/api-access/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": conn["login"],
        "client_secret": conn["password"], "audience": audience})
    r.raise_for_status()
    return r.json()["access_token"]


class DialsHttp:
    """A bearer-authenticated session on the twin's /api/v1/."""

    def __init__(self, emu: EmulatorProcess, token: str | None = None) -> None:
        self.url = emu.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token or access_token(emu)}"

    def get(self, path: str, params: dict | list | None = None,
            headers: dict | None = None, **kwargs) -> requests.Response:
        target = path if path.startswith("http") else f"{self.url}/api/v1/{path}"
        return self.session.get(target, params=params, headers=headers, timeout=30, **kwargs)

    def json(self, path: str, params: dict | list | None = None,
             headers: dict | None = None) -> dict | list:
        r = self.get(path, params, headers)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        return r.json()

    def pages(self, path: str, params: dict, headers: dict | None = None) -> Iterator[dict]:
        """Follow `next` links as given by the server."""
        page = self.json(path, params, headers)
        yield page
        while page["next"] is not None:
            page = self.json(page["next"], headers=headers)
            yield page

    def rows(self, path: str, params: dict, headers: dict | None = None) -> list[dict]:
        return [row for page in self.pages(path, params, headers) for row in page["results"]]


def expand(ranges: list[list[int]]) -> list[int]:
    return [n for first, last in ranges for n in range(first, last + 1)]


def dataset_truth(truth: dict, dataset_id: int) -> dict:
    return next(d for d in truth["datasets"] if d["dataset_id"] == dataset_id)


def runs_in_dials(truth: dict, dataset_id: int) -> dict[int, list[int]]:
    """run -> LS numbers DIALS holds, from the world's truth."""
    runs = dataset_truth(truth, dataset_id)["runs"]
    return {int(r): expand(v["dials_ls"]) for r, v in runs.items() if v["in_dials"]}


def token_key(url: str, key_len: int) -> tuple[int, ...] | None:
    """The cursor position carried by a `next` link."""
    cursor = decode_cursor(parse_qs(urlsplit(url).query)["next_token"][0], key_len)
    assert cursor is not None and not cursor.reverse and cursor.offset == 0
    return cursor.position


@pytest.fixture(scope="module")
def dials(emulator: EmulatorProcess) -> DialsHttp:
    return DialsHttp(emulator)


@pytest.fixture(scope="module")
def tracker_mes(truth: dict) -> dict[int, dict]:
    return {m["me_id"]: m for m in truth["workspaces"]["tracker"]["mes"]}


# --------------------------------------------------------------------------- pagination


def test_cursor_token_is_the_reference_encoding() -> None:
    token = encode_cursor(Cursor((15102369, 381384, 10, 15682)))
    assert token == REFERENCE_TOKEN
    assert base64.b64decode(token).decode() == REFERENCE_PLAIN
    assert decode_cursor(REFERENCE_TOKEN, 4) == Cursor((15102369, 381384, 10, 15682))


def test_next_token_is_the_last_row_of_the_page(dials: DialsHttp) -> None:
    page = dials.json("th2/", {"dataset_id": ZERO_BIAS, "page_size": 3})
    last = page["results"][-1]
    position = (last["dataset_id"], last["run_number"], last["ls_number"], last["me_id"])
    assert token_key(page["next"], 4) == position
    token = parse_qs(urlsplit(page["next"]).query)["next_token"][0]
    assert token == encode_cursor(Cursor(position))


def test_next_is_absolute_sorted_and_keeps_every_param(dials: DialsHttp,
                                                       emulator: EmulatorProcess) -> None:
    asked = [("run_number__gte", "379414"), ("me__regex", "charge_PXLayer_"),
             ("page_size", "3"), ("fields", "me,ls_number"), ("dataset_id", str(ZERO_BIAS)),
             ("ls_numbet__lte", "4")]
    first = dials.json("th1/", asked)
    assert first["previous"] is None
    nxt = first["next"]
    assert nxt.startswith(f"{emulator.url}/api/v1/th1/?")
    pairs = parse_qsl(urlsplit(nxt).query, keep_blank_values=True)
    names = [k for k, _ in pairs]
    assert names == sorted(names)
    assert {k: v for k, v in pairs if k != "next_token"} == dict(asked)
    assert "&fields=me%2Cls_number&" in nxt  # URL-encoded like Django's urlencode
    second = dials.json(nxt)
    again = parse_qsl(urlsplit(second["next"]).query)
    assert [k for k, _ in again].count("next_token") == 1
    assert second["previous"] is not None


def test_page_size_default_clamp_and_junk(dials: DialsHttp) -> None:
    def size(value: object) -> int:
        params = {"dataset_id": EXPRESS} if value is None else {"dataset_id": EXPRESS,
                                                                "page_size": value}
        return len(dials.json("th1/", params)["results"])

    assert size(None) == 10
    assert size(7) == 7
    assert size(500) == 500
    assert size(100000) == 500
    for junk in (0, -3, "abc", "2.5", ""):
        assert size(junk) == 10, junk
    page = dials.json("th1/", {"dataset_id": EXPRESS, "page_size": 100000})
    assert "page_size=100000" in page["next"]  # the URL keeps the asked value


def test_next_is_null_exactly_on_the_last_page(dials: DialsHttp, truth: dict) -> None:
    run, lss = next(iter(runs_in_dials(truth, EXPRESS).items()))
    n = len(lss)
    exact = dials.json("lumisection/", {"dataset_id": EXPRESS, "run_number": run,
                                        "page_size": n})
    assert [r["ls_number"] for r in exact["results"]] == lss
    assert exact["next"] is None
    short = dials.json("lumisection/", {"dataset_id": EXPRESS, "run_number": run,
                                        "page_size": n - 1})
    assert short["next"] is not None
    tail = dials.json(short["next"])
    assert [r["ls_number"] for r in tail["results"]] == lss[-1:]
    assert tail["next"] is None


def test_previous_link_returns_the_page_before(dials: DialsHttp) -> None:
    params = {"dataset_id": ZERO_BIAS, "page_size": 4}
    first = dials.json("lumisection/", params)
    second = dials.json(first["next"])
    back = dials.json(second["previous"])
    assert back["results"] == first["results"]
    assert dials.json(back["next"])["results"] == second["results"]


def test_invalid_cursor_is_404(dials: DialsHttp) -> None:
    for junk in ("garbage!", "cD0x", base64.b64encode(b"p=%5B%221%22%5D").decode()):
        r = dials.get("th1/", {"next_token": junk})
        assert r.status_code == 404, junk
        assert r.json() == {"detail": "Invalid cursor"}


def test_histograms_interleave_mes_per_lumisection(dials: DialsHttp, truth: dict,
                                                   tracker_mes: dict[int, dict]) -> None:
    run, lss = next(iter(runs_in_dials(truth, ZERO_BIAS).items()))
    one_d = sorted(i for i, m in tracker_mes.items() if m["dim"] == 1)
    rows = dials.json("th1/", {"dataset_id": ZERO_BIAS, "run_number": run,
                               "page_size": 3 * len(one_d)})["results"]
    keys = [(r["dataset_id"], r["run_number"], r["ls_number"], r["me_id"]) for r in rows]
    assert keys == [(ZERO_BIAS, run, ls, me) for ls in lss[:3] for me in one_d]


# --------------------------------------------------------------------------- filters


def test_regex_is_an_unanchored_case_sensitive_search(dials: DialsHttp) -> None:
    def names(params: dict) -> list[str]:
        return [d["dataset"] for d in dials.json("dataset-index/", params)["results"]]

    assert names({"dataset__regex": "ZeroBias"}) == ["/ZeroBias/Run2024C-PromptReco-v1/DQMIO"]
    assert names({"dataset__regex": "zerobias"}) == []
    assert names({"dataset__regex": "^ZeroBias"}) == []  # names start with '/'
    assert names({"dataset": "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"}) == [
        "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"]
    assert names({"dataset": "ZeroBias"}) == []


def test_plus_in_an_me_regex_must_be_escaped(dials: DialsHttp) -> None:
    def mes(pattern: str) -> list[str]:
        return [m["me"] for m in dials.json("mes/", {"me__regex": pattern})]

    assert mes("charge_PXDisk_+1") == []  # '+' is a quantifier
    assert mes(r"charge_PXDisk_\+1") == ["PixelPhase1/Tracks/PXForward/charge_PXDisk_+1"]


def test_invalid_regex_is_an_html_500(dials: DialsHttp) -> None:
    r = dials.get("th1/", {"me__regex": "charge_(PXLayer"})
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/html")
    assert "Server Error (500)" in r.text


def test_regexes_are_postgresql_regexes_on_every_filter(dials: DialsHttp) -> None:
    """docs/emulator.md "Regex dialect": the same dialect for dataset, me, LFN, ML names."""
    def mes(pattern: str) -> list[str]:
        return [m["me"] for m in dials.json("mes/", {"me__regex": pattern})]

    assert mes(r"\mcharge_PXDisk_[[:punct:]]1\M") == [
        "PixelPhase1/Tracks/PXForward/charge_PXDisk_+1",
        "PixelPhase1/Tracks/PXForward/charge_PXDisk_-1"]
    assert mes(r"(?i)CHARGE_PXLAYER_1$") == ["PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"]
    assert mes(r"\bcharge") == []
    files = dials.json("file-index/", {"logical_file_name__regex": r"\y[[:xdigit:]]{8}-",
                                       "page_size": 1})["results"]
    assert files
    assert dials.get("file-index/", {"logical_file_name__regex": r"\z"}).status_code == 500
    assert dials.get("ml-models-index/", {"target_me__regex": "(?<x>y)"}).status_code == 500
    assert dials.get("th2/", {"me__regex": "(?P<x>PXLayer)"}).status_code == 500


def test_bad_cursors_and_numbers_are_answered_before_a_bad_regex(dials: DialsHttp) -> None:
    r = dials.get("th1/", {"me__regex": "(?P<x>a)", "next_token": "cD0x"})
    assert (r.status_code, r.json()) == (404, {"detail": "Invalid cursor"})
    r = dials.get("th1/", {"me__regex": "(?P<x>a)", "run_number": "x"})
    assert r.status_code == 400


def test_valid_postgresql_the_emulator_cannot_run_says_so(dials: DialsHttp) -> None:
    r = dials.get("mes/", {"me__regex": "(?<=P+)X"})  # variable-length lookbehind
    assert r.status_code == 501
    assert "not modelled" in r.json()["detail"]


def test_bad_numbers_are_field_keyed_400(dials: DialsHttp) -> None:
    r = dials.get("run/", {"run_number": "abc"})
    assert (r.status_code, r.json()) == (400, {"run_number": ["Enter a number."]})
    r = dials.get("th2/", {"ls_number__gte": "x", "me_id": "1O", "dataset": "anything"})
    assert r.status_code == 400
    assert r.json() == {"ls_number__gte": ["Enter a number."], "me_id": ["Enter a number."]}


def test_unknown_params_are_ignored(dials: DialsHttp) -> None:
    base = {"dataset_id": ZERO_BIAS, "page_size": 20}
    plain = dials.json("th1/", base)["results"]
    assert dials.json("th1/", {**base, "ls_numbet__lte": 1, "colour": "blue"})["results"] == plain
    assert len({r["ls_number"] for r in plain}) > 1


def test_numeric_bounds_and_lists(dials: DialsHttp, truth: dict) -> None:
    runs = sorted(runs_in_dials(truth, EXPRESS))
    lo, hi = runs[2], runs[5]
    got = [r["run_number"] for r in dials.rows("run/", {
        "dataset_id": EXPRESS, "run_number__gte": lo, "run_number__lte": hi})]
    assert got == runs[2:6]
    run = runs[3]
    both = dials.rows("run/", {"dataset_id__in": f"{ZERO_BIAS},{EXPRESS}", "run_number": run})
    assert [(r["dataset_id"], r["run_number"]) for r in both] == [
        (ds, run) for ds in (EXPRESS, ZERO_BIAS) if run in runs_in_dials(truth, ds)]
    assert dials.json("run/", {"run_number": "379414.5"})["results"] == []


def test_entries_filter(dials: DialsHttp) -> None:
    params = {"dataset_id": ZERO_BIAS, "me_id": 5, "page_size": 500}
    everything = dials.rows("th1/", params)
    cut = sorted(r["entries"] for r in everything)[len(everything) // 2]
    kept = dials.rows("th1/", {**params, "entries__gte": cut})
    assert kept == [r for r in everything if r["entries"] >= cut]
    assert 0 < len(kept) < len(everything)


def test_fields_projection(dials: DialsHttp, truth: dict) -> None:
    page = dials.json("th2/", {"page_size": 3, "fields": "ls_number,bogus,run_number"})
    assert [list(r) for r in page["results"]] == [["run_number", "ls_number"]] * 3
    nothing = dials.json("lumisection/", {"page_size": 2, "fields": "bogus"})
    assert nothing["results"] == [{}, {}] and nothing["next"] is not None
    assert dials.json(f"dataset-index/{ZERO_BIAS}/", {"fields": "dataset"}) == {
        "dataset": dataset_truth(truth, ZERO_BIAS)["dataset"]}
    assert dials.json("mes/5/", {"fields": "dim,me_id"}) == {"me_id": 5, "dim": 1}
    run, lss = next(iter(runs_in_dials(truth, ZERO_BIAS).items()))
    full = dials.json(f"th1/{ZERO_BIAS}/{run}/{lss[0]}/5/", {"fields": "me"})
    assert len(full["data"]) == full["x_bin"]  # composite-key GETs ignore `fields`


# --------------------------------------------------------------------------- rows


def test_histogram_rows_have_the_serializer_layout(dials: DialsHttp) -> None:
    r = dials.get("th2/", {"me_id": 15682, "page_size": 1})
    row = r.json()["results"][0]
    assert list(row) == ["dataset_id", "dataset", "me", "file_id", "run_number", "ls_number",
                         "me_id", "x_min", "x_max", "x_bin", "y_min", "y_max", "y_bin",
                         "entries", "data"]
    assert (len(row["data"]), len(row["data"][0])) == (row["y_bin"], row["x_bin"]) == (26, 72)
    assert b'"x_min":-4.5,' in r.content and b'"x_bin":72,' in r.content
    assert re.search(rb'"data":\[\[\d+\.0,', r.content)  # floats keep their decimal point
    one = dials.json("th1/", {"me_id": 5, "page_size": 1})["results"][0]
    assert list(one) == ["dataset_id", "dataset", "me", "file_id", "run_number", "ls_number",
                         "me_id", "x_min", "x_max", "x_bin", "entries", "data"]


def test_lumisections_match_the_truth(dials: DialsHttp, truth: dict,
                                      tracker_mes: dict[int, dict]) -> None:
    expected = runs_in_dials(truth, ZERO_BIAS)
    rows = dials.rows("lumisection/", {"dataset_id": ZERO_BIAS, "page_size": 500})
    got: dict[int, list[int]] = {}
    for r in rows:
        got.setdefault(r["run_number"], []).append(r["ls_number"])
    assert got == expected
    dims = [m["dim"] for m in tracker_mes.values()]
    assert {(r["th1_count"], r["th2_count"]) for r in rows} == {(dims.count(1), dims.count(2))}


def test_mes_are_a_bare_list_with_counts(dials: DialsHttp, truth: dict) -> None:
    mes = dials.json("mes/")
    assert isinstance(mes, list)
    assert [(m["me_id"], m["me"], m["dim"]) for m in mes] == [
        (m["me_id"], m["me"], m["dim"]) for m in truth["workspaces"]["tracker"]["mes"]]
    stored = sum(len(lss) for ds in (EXPRESS, ZERO_BIAS)
                 for lss in runs_in_dials(truth, ds).values())
    assert {m["count"] for m in mes} == {stored}
    assert {m["dim"] for m in dials.json("mes/", {"dim": 2})} == {2}
    run = next(iter(runs_in_dials(truth, ZERO_BIAS)))
    of_run = dials.json(f"mes/{ZERO_BIAS}/{run}/")
    assert [list(m) for m in of_run] == [["me_id", "me", "dim"]] * len(mes)


def test_key_gets_and_misses(dials: DialsHttp, truth: dict) -> None:
    run, lss = next(iter(runs_in_dials(truth, ZERO_BIAS).items()))
    listed = dials.json("th2/", {"dataset_id": ZERO_BIAS, "run_number": run,
                                 "ls_number": lss[0], "me_id": 15682})["results"]
    assert dials.json(f"th2/{ZERO_BIAS}/{run}/{lss[0]}/15682/") == listed[0]
    misses = {
        f"th1/{ZERO_BIAS}/{run}/{lss[0]}/15682/": "TH1",  # a 2D ME is no TH1
        f"th2/{ZERO_BIAS}/{run}/99999/15682/": "TH2",
        f"run/{ZERO_BIAS}/1/": "Run",
        f"lumisection/{ZERO_BIAS}/{run}/0/": "Lumisection",
        "dataset-index/42/": "DatasetIndex",
        "dataset-index/abc/": "DatasetIndex",
        "mes/123456/": "MEs",
        f"file-index/{ZERO_BIAS}/1/": "FileIndex",
    }
    for path, model in misses.items():
        r = dials.get(path)
        assert (r.status_code, r.json()) == (
            404, {"detail": f"No {model} matches the given query."}), path


def test_ls_completeness_below_one_where_lumisections_are_missing(dials: DialsHttp,
                                                                 truth: dict) -> None:
    checked = 0
    for planted in truth["planted"]["dials_missing_ls"]:
        ds, run = planted["dataset_id"], planted["run"]
        runs = dataset_truth(truth, ds)["runs"][str(run)]
        if not runs["in_dials"]:
            continue
        row = dials.json(f"run/{ds}/{run}/")
        in_dials, in_dbs = len(expand(runs["dials_ls"])), len(expand(runs["dbs_ls"]))
        assert row["ls_count"] == in_dials
        assert row["ls_completeness"] == pytest.approx(in_dials / in_dbs)
        assert row["ls_completeness"] < 1
        checked += 1
    assert checked >= 3
    complete = dials.json("run/", {"dataset_id": EXPRESS, "page_size": 1})["results"][0]
    assert complete["ls_completeness"] == 1.0


def test_file_index_shows_the_copy_error_file(dials: DialsHttp, truth: dict) -> None:
    failed = [p for p in truth["planted"]["dials_missing_ls"] if p.get("cause") == "COPY_ERROR"]
    assert failed
    rows = dials.rows("file-index/", {"status": "COPY_ERROR"})
    assert [r["file_id"] for r in rows] == [p["file_id"] for p in failed]
    assert all(r["err_trace"] for r in rows)
    assert list(rows[0]) == ["dataset_id", "dataset", "file_id", "file_size", "creation_date",
                             "last_modification_date", "logical_file_name", "status",
                             "err_trace"]
    assert rows[0]["creation_date"].endswith("Z")
    count = dials.json("file-index/count/", {"status": "COPY_ERROR"})
    assert count == {"count": len(failed)}
    finished = dials.rows("file-index/", {"dataset_id": ZERO_BIAS, "status": "FINISHED",
                                          "page_size": 500})
    assert finished and all(r["err_trace"] is None for r in finished)


def test_failing_me_fails_only_its_pages(dials: DialsHttp, emulator: EmulatorProcess) -> None:
    emulator.set_faults(failing_me="charge_PXLayer_2$")
    try:
        assert dials.get("th1/", {"me_id": 6}).status_code == 500
        assert dials.get("th1/", {"me_id": 5}).status_code == 200
        assert dials.get("th2/").status_code == 200
    finally:
        emulator.set_faults(failing_me=None)
    assert dials.get("th1/", {"me_id": 6}).status_code == 200


# --------------------------------------------------------------------------- workspaces


def test_oms_errors_behind_the_oms_proxy_are_djangos_500(dials: DialsHttp) -> None:
    """DIALS raises on any OMS error and on a missing `endpoint`; nothing catches it."""
    assert dials.get("oms-proxy/", {"endpoint": "runs", "page[limit]": "1"}).status_code == 200
    for params in ({"endpoint": "no-such-resource"},  # OMS: 404
                   {"endpoint": "runs", "filter[run_number][XX]": "1"},  # OMS: 400
                   {"filter[run_number][EQ]": "1"}):  # no endpoint
        r = dials.get("oms-proxy/", params)
        assert r.status_code == 500, params
        assert r.headers["content-type"].startswith("text/html")
        assert "<title>Server Error (500)</title>" in r.text


def test_workspace_header(dials: DialsHttp) -> None:
    r = dials.get("run/", headers={"Workspace": "muon"})
    assert (r.status_code, r.json()) == (404, {"detail": "Workspace 'muon' not found"})
    assert dials.json("th1/", headers={"WORKSPACE": "jetmet"})["results"] == []
    ecal = dials.json("mes/", headers={"workspace": "ecal"})
    assert {m["me"].split("/")[0] for m in ecal} == {"EcalBarrel"}
    ecal_sets = dials.json("dataset-index/", headers={"workspace": "ecal"})["results"]
    assert [d["dataset_id"] for d in ecal_sets] == [ZERO_BIAS]
    assert dials.json("workspaces/")["workspaces"] == dials.json("auth/workspaces/")[
        "workspaces"]
    assert dials.json("workspaces/my-default/") == {"workspace": "tracker"}


# --------------------------------------------------------------------------- auth


def test_auth_failures_are_403_with_drf_bodies(emulator: EmulatorProcess) -> None:
    url = f"{emulator.url}/api/v1/run/"

    def denied(headers: dict) -> dict:
        r = requests.get(url, headers=headers, timeout=10)
        assert r.status_code == 403, r.text
        return r.json()

    assert denied({}) == {"detail": "Authorization header not found.",
                          "code": "authorization_not_found"}
    invalid = {"detail": "Token is invalid or expired", "code": "token_not_valid"}
    assert denied({"X-CLIENT-SECRET": "nope"}) == invalid
    assert denied({"Authorization": "Bearer not-a-jwt"}) == invalid
    assert denied({"Authorization": "Token abc"}) == invalid
    good = access_token(emulator)
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert denied({"Authorization": f"Bearer {tampered}"})["code"] == (
        "access_token_invalid_jws_signature")
    assert denied({"Authorization": f"Bearer {access_token(emulator, OMS_AUDIENCE)}"}) == {
        "detail": "Unexpected error validating token.", "code": "access_token_unexpected_error"}
    # Auth comes before the workspace check, and a bad secret beats a good bearer token.
    assert denied({"Workspace": "muon"})["code"] == "authorization_not_found"
    assert denied({"X-CLIENT-SECRET": "nope", "Authorization": f"Bearer {good}"}) == invalid
    secret = emulator.connections()["dials_default"]["password"]
    assert requests.get(url, headers={"X-CLIENT-SECRET": secret}, timeout=10).status_code == 200


def test_expired_token_is_403() -> None:
    with EmulatorProcess("--token-ttl", "1") as emu:
        token = access_token(emu)
        assert DialsHttp(emu, token).get("run/").status_code == 200
        time.sleep(1.6)
        r = DialsHttp(emu, token).get("run/")
        assert (r.status_code, r.json()) == (403, {"detail": "Access token has expired.",
                                                   "code": "access_token_expired"})


def test_new_device_needs_no_auth(emulator: EmulatorProcess) -> None:
    r = requests.get(f"{emulator.url}/api/v1/auth/new-device/", timeout=10)
    assert r.status_code == 200
    assert set(r.json()) == {"device_code", "verification_uri_complete", "expires_in"}


# --------------------------------------------------------------------------- routing


def test_missing_slash_is_301_and_unknown_routes_are_html_404(dials: DialsHttp) -> None:
    r = dials.get("th1", {"page_size": 2}, allow_redirects=False)
    assert r.status_code == 301
    assert r.headers["location"] == "/api/v1/th1/?page_size=2"
    r = dials.get(f"th1/{ZERO_BIAS}/1/2/5", allow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (301, f"/api/v1/th1/{ZERO_BIAS}/1/2/5/")
    for path in ("nothing/", "th2/abc/", "th1/1/2/3/x/", "nothing"):
        r = dials.get(path, allow_redirects=False)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
        assert "<title>Not Found</title>" in r.text
    assert len(dials.json("th1", {"page_size": 2})["results"]) == 2  # requests follows


def test_wrong_method_is_405_after_auth(dials: DialsHttp, emulator: EmulatorProcess) -> None:
    r = dials.session.delete(f"{emulator.url}/api/v1/th1/", timeout=10)
    assert (r.status_code, r.json()) == (405, {"detail": 'Method "DELETE" not allowed.'})
    assert requests.delete(f"{emulator.url}/api/v1/th1/", timeout=10).status_code == 403


# --------------------------------------------------------------------------- the clock


def test_world_clock_header_reveals_a_held_back_run(dials: DialsHttp, truth: dict) -> None:
    runs = dataset_truth(truth, ZERO_BIAS)["runs"]
    held = [int(r) for r in truth["planted"]["held_back_in_dials"]
            if runs[str(r)]["in_dbs"] and not runs[str(r)]["in_dials"]]
    assert held
    run = held[0]
    params = {"dataset_id": ZERO_BIAS, "run_number": run}
    assert dials.json("run/", params)["results"] == []
    assert dials.get(f"run/{ZERO_BIAS}/{run}/").status_code == 404
    later = {"X-Emulator-Now": iso(utc(runs[str(run)]["dials_ingested_at"]) +
                                   timedelta(seconds=1))}
    (row,) = dials.json("run/", params, later)["results"]
    assert row["ls_count"] == len(expand(runs[str(run)]["dbs_ls"]))
    assert dials.json(f"run/{ZERO_BIAS}/{run}/", headers=later) == row
    lumis = dials.rows("lumisection/", {**params, "page_size": 500}, later)
    assert [r["ls_number"] for r in lumis] == expand(runs[str(run)]["dbs_ls"])
    earlier = {"X-Emulator-Now": truth["runs"][0]["start_time"]}
    assert dials.json("th1/", headers=earlier)["results"] == []
