"""The DBS twin over plain HTTP, asked the way dasgoclient and DIALS ask (docs/reference/dbs_caf.md
A, A2)."""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import orjson
import pytest
import requests

from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.world.basics import iso, utc

ZERO_BIAS = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
EXPRESS = "/StreamExpress/Run2024C-Express-v1/DQMIO"
DATASET_DETAIL_KEYS = [
    "acquisition_era_name", "create_by", "creation_date", "data_tier_name", "dataset",
    "dataset_access_type", "dataset_id", "last_modification_date", "last_modified_by",
    "physics_group_name", "prep_id", "primary_ds_name", "primary_ds_type", "processed_ds_name",
    "processing_version", "xtcrosssection"]
FILE_DETAIL_KEYS = {
    "file_id", "logical_file_name", "is_file_valid", "dataset_id", "dataset", "block_id",
    "block_name", "file_type_id", "file_type", "check_sum", "event_count", "file_size",
    "branch_hash_id", "adler32", "md5", "auto_cross_section", "creation_date", "create_by",
    "last_modification_date", "last_modified_by"}


class Dbs:
    """GETs on the DBSReader base URL of a connection, as a session would send them."""

    def __init__(self, emu: EmulatorProcess) -> None:
        self.base = emu.connections()["dbs_default"]["host"]
        self.session = requests.Session()

    def get(self, api: str, params: dict[str, str] | None = None,
            **headers: str) -> requests.Response:
        return self.session.get(f"{self.base}/{api}", params=params, headers=headers, timeout=30)

    def rows(self, api: str, params: dict[str, str] | None = None, **headers: str) -> list:
        r = self.get(api, params, **headers)
        assert r.status_code == 200, r.text[:300]
        return r.json()


@pytest.fixture(scope="module")
def dbs(emulator: EmulatorProcess) -> Dbs:
    return Dbs(emulator)


def _expand(ranges: list[list[int]]) -> list[int]:
    return [ls for first, last in ranges for ls in range(first, last + 1)]


def _dataset(truth: dict, name: str) -> dict:
    return next(d for d in truth["datasets"] if d["dataset"] == name)


def _in_dbs(truth: dict, name: str) -> dict[int, dict]:
    return {int(run): info for run, info in _dataset(truth, name)["runs"].items()
            if info["in_dbs"]}


def _run_lumis(dbs: Dbs, dataset: str, **headers: str) -> dict[int, list[int]]:
    """dasgoclient's run_lumi4dataset: blocks?dataset=, then filelumis per block, in parallel."""
    blocks = [b["block_name"] for b in dbs.rows("blocks", {"dataset": dataset}, **headers)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        pages = list(pool.map(
            lambda block: dbs.rows("filelumis", {"block_name": block}, **headers), blocks))
    lumis: dict[int, list[int]] = collections.defaultdict(list)
    for rows in pages:
        for row in rows:
            assert set(row) == {"event_count", "logical_file_name", "lumi_section_num",
                                "run_num"}
            assert isinstance(row["lumi_section_num"], int)
            lumis[row["run_num"]].append(row["lumi_section_num"])
    return lumis


# --------------------------------------------------------------------------- run / lumi


@pytest.mark.parametrize("dataset", [ZERO_BIAS, EXPRESS])
def test_blocks_then_filelumis_give_the_truths_run_lumis(dbs: Dbs, truth: dict, dataset: str):
    lumis = _run_lumis(dbs, dataset)
    expected = {run: _expand(info["dbs_ls"]) for run, info in _in_dbs(truth, dataset).items()}
    assert expected
    assert {run: sorted(ls) for run, ls in lumis.items()} == expected
    assert all(len(ls) == len(set(ls)) for ls in lumis.values())  # no LS in two files


def test_earlier_clock_shows_only_registered_files_and_their_blocks(dbs: Dbs, truth: dict):
    runs = _in_dbs(truth, ZERO_BIAS)
    # exactly at a registration: the file registered then is already visible
    middle = sorted(utc(info["dbs_registered_at"]) for info in runs.values())[len(runs) // 2]
    now = iso(middle)
    visible = {run: info for run, info in runs.items()
               if utc(info["dbs_registered_at"]) <= utc(now)}
    clock = {"X-Emulator-Now": now}
    blocks = {b["block_name"] for b in dbs.rows("blocks", {"dataset": ZERO_BIAS}, **clock)}
    assert blocks == {f["block"] for info in visible.values() for f in info["files"]}
    lumis = _run_lumis(dbs, ZERO_BIAS, **clock)
    assert {run: sorted(ls) for run, ls in lumis.items()} == \
        {run: _expand(info["dbs_ls"]) for run, info in visible.items()}
    assert 0 < len(visible) < len(runs)


def test_runs_of_a_dataset_are_flat_rows(dbs: Dbs, truth: dict):
    rows = dbs.rows("runs", {"dataset": EXPRESS})
    assert rows == [{"run_num": run} for run in sorted(_in_dbs(truth, EXPRESS))]


@pytest.mark.parametrize("form", ["{a}-{b}", "[{a},{b}]", "{a}"])
def test_run_num_forms(dbs: Dbs, truth: dict, form: str):
    runs = sorted(_in_dbs(truth, ZERO_BIAS))
    a, b = runs[2], runs[3] if "{b}" in form else runs[2]
    rows = dbs.rows("files", {"dataset": ZERO_BIAS, "run_num": form.format(a=a, b=b)})
    assert {r["run_num"] for r in rows} == ({a, b} if a != b else {a})
    assert all(set(r) == {"logical_file_name", "run_num"} for r in rows)
    expected = {f["lfn"] for run in {a, b}
                for f in _dataset(truth, ZERO_BIAS)["runs"][str(run)]["files"]}
    assert {r["logical_file_name"] for r in rows} == expected


# --------------------------------------------------------------------------- other APIs


def test_files_of_a_wildcard_dataset_with_detail(dbs: Dbs, truth: dict):
    rows = dbs.rows("files", {"dataset": "/StreamExpress/*/DQMIO", "detail": "1"})
    expected = [f for info in _in_dbs(truth, EXPRESS).values() for f in info["files"]]
    assert sorted(r["logical_file_name"] for r in rows) == sorted(f["lfn"] for f in expected)
    assert all(set(r) == FILE_DETAIL_KEYS for r in rows)
    assert {r["file_id"] for r in rows} == {f["file_id"] for f in expected}
    assert all(r["dataset"] == EXPRESS for r in rows)
    invalid = {p["file_id"] for p in truth["planted"]["invalid_files"]}
    assert {r["file_id"] for r in rows if r["is_file_valid"] == 0} == \
        {r["file_id"] for r in rows} & invalid
    assert all(r["is_file_valid"] == 1 for r in rows if r["file_id"] not in invalid)


# --------------------------------------------------------------------------- validity


@pytest.fixture(scope="module")
def invalid(truth: dict) -> list[dict]:
    files = truth["planted"]["invalid_files"]
    assert {f["dataset_id"] for f in files} == {d["dataset_id"] for d in truth["datasets"]}
    return files


def test_valid_file_only_drops_invalidated_files(dbs: Dbs, truth: dict, invalid: list[dict]):
    """dbs2go: files and filelumis show is_file_valid=0 files unless validFileOnly=1."""
    for planted in invalid:
        dataset = next(d["dataset"] for d in truth["datasets"]
                       if d["dataset_id"] == planted["dataset_id"])
        query = {"dataset": dataset, "run_num": str(planted["run"])}
        every = {r["logical_file_name"] for r in dbs.rows("files", query)}
        valid = {r["logical_file_name"] for r in dbs.rows("files", {**query,
                                                                    "validFileOnly": "1"})}
        assert planted["lfn"] in every and valid == every - {planted["lfn"]}
        assert valid  # the run keeps its other files
        assert {r["logical_file_name"] for r in dbs.rows("files", {**query,
                                                                   "validFileOnly": "0"})} \
            == every
        (row,) = dbs.rows("files", {"logical_file_name": planted["lfn"], "detail": "1"})
        assert row["is_file_valid"] == 0
        assert row["last_modification_date"] == int(utc(planted["invalidated_at"]).timestamp())
        block = row["block_name"]
        lumis = {(r["logical_file_name"], r["lumi_section_num"])
                 for r in dbs.rows("filelumis", {"block_name": block})}
        valid_lumis = {(r["logical_file_name"], r["lumi_section_num"])
                       for r in dbs.rows("filelumis", {"block_name": block,
                                                       "validFileOnly": "1"})}
        first, last = planted["ls"]
        assert {(planted["lfn"], ls) for ls in range(first, last + 1)} == lumis - valid_lumis
        info = _dataset(truth, dataset)["runs"][str(planted["run"])]
        assert set(_expand(info["dbs_ls"])) - set(_expand(info["dbs_valid_ls"])) == \
            set(range(first, last + 1))
        # blocks and runs do not look at validity
        assert block in {b["block_name"] for b in dbs.rows("blocks", {"dataset": dataset})}
        assert {"run_num": planted["run"]} in dbs.rows("runs", {"dataset": dataset})


def test_a_file_is_valid_until_it_is_invalidated(dbs: Dbs, invalid: list[dict]):
    planted = invalid[0]
    before = iso(utc(planted["invalidated_at"]) - timedelta(seconds=1))
    (row,) = dbs.rows("files", {"logical_file_name": planted["lfn"], "detail": "1"},
                      **{"X-Emulator-Now": before})
    assert row["is_file_valid"] == 1
    assert row["last_modification_date"] == row["creation_date"]
    assert dbs.rows("files", {"logical_file_name": planted["lfn"], "validFileOnly": "1"},
                    **{"X-Emulator-Now": before}) == [{"logical_file_name": planted["lfn"]}]


@pytest.mark.parametrize(("pattern", "expected"), [
    ("/ZeroBias/*/DQMIO", [ZERO_BIAS]), ("/*/*Run2024C*/DQMIO", [EXPRESS, ZERO_BIAS]),
    (ZERO_BIAS, [ZERO_BIAS]), ("/ZeroBias/*/AOD", []), ("*", [EXPRESS, ZERO_BIAS]),
])
def test_dataset_wildcards(dbs: Dbs, pattern: str, expected: list[str]):
    assert [r["dataset"] for r in dbs.rows("datasets", {"dataset": pattern})] == expected


def test_dataset_detail_keys_and_access_type_rule(dbs: Dbs, truth: dict):
    r = dbs.get("datasets", {"dataset": ZERO_BIAS, "detail": "true"})
    (row,) = r.json()
    assert list(row) == DATASET_DETAIL_KEYS  # Go map encoding: alphabetical
    assert r.content.split(b"\n")[1].startswith(b'{"acquisition_era_name":"Run2024C",')
    assert row["dataset_id"] == _dataset(truth, ZERO_BIAS)["dataset_id"]
    assert (row["primary_ds_name"], row["processed_ds_name"], row["processing_version"]) == \
        ("ZeroBias", "Run2024C-PromptReco-v1", 1)
    assert isinstance(row["last_modification_date"], int)
    assert dbs.rows("datasets", {"dataset": ZERO_BIAS, "dataset_access_type": "*"}) == \
        [{"dataset": ZERO_BIAS}]
    assert dbs.rows("datasets", {"dataset": ZERO_BIAS,
                                 "dataset_access_type": "INVALID"}) == []


def test_block_detail_counts_its_visible_files(dbs: Dbs, truth: dict):
    rows = dbs.rows("blocks", {"dataset": ZERO_BIAS, "detail": "1"})
    files = collections.Counter(f["block"] for info in _in_dbs(truth, ZERO_BIAS).values()
                                for f in info["files"])
    assert {r["block_name"]: r["file_count"] for r in rows} == dict(files)
    assert all(r["dataset"] == ZERO_BIAS and r["open_for_writing"] in (0, 1) for r in rows)


# --------------------------------------------------------------------------- layout


def test_streaming_layout_bytes(dbs: Dbs):
    body = dbs.get("runs", {"dataset": EXPRESS}).content
    lines = body.split(b"\n")
    assert body.startswith(b"[\n{") and body.endswith(b"}\n]\n")
    assert lines[1].startswith(b"{") and all(line.startswith(b",{") for line in lines[2:-2])
    assert lines[-2:] == [b"]", b""]
    assert dbs.get("runs", {"dataset": "/Nope/Run2024C-PromptReco-v1/DQMIO"}).content == b"[]"


def test_ndjson_on_request(dbs: Dbs):
    block = dbs.rows("blocks", {"dataset": EXPRESS})[0]["block_name"]
    as_json = dbs.rows("filelumis", {"block_name": block})
    r = dbs.get("filelumis", {"block_name": block}, Accept="application/ndjson")
    assert r.headers["content-type"].startswith("application/ndjson")
    assert not r.content.startswith(b"[") and r.content.endswith(b"}\n")
    assert [orjson.loads(line) for line in r.content.splitlines()] == as_json


# --------------------------------------------------------------------------- errors


def _dbs_error(r: requests.Response) -> dict[str, Any]:
    """dbs2go's error body: a list with one ServerError (docs/reference/dbs_caf.md A.3)."""
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/json")
    (error,) = r.json()
    assert list(error) == ["error", "http", "exception", "type", "message"]
    assert set(error["error"]) >= {"reason", "message", "function", "code"}
    assert error["exception"] == 400 and error["type"] == "HTTPError"
    assert error["http"]["code"] == 400 and error["http"]["method"] == "GET"
    assert error["message"].startswith(f"\nDBSError\n   Code: {error['error']['code']}\n")
    return error


def test_filelumis_refuses_a_dataset(dbs: Dbs):
    r = dbs.get("filelumis", {"dataset": ZERO_BIAS})
    error = _dbs_error(r)
    assert error["error"]["code"] == 118
    assert error["error"]["reason"] == "invalid parameter(s)"
    assert error["error"]["message"] == "parameter 'dataset' is not accepted by 'filelumis' API"
    assert error["error"]["function"] == "dbs.parameters.CheckQueryParameters"
    assert error["http"]["path"] == f"/dbs/prod/global/DBSReader/filelumis?dataset={ZERO_BIAS}"
    assert "Message: parameter 'dataset' is not accepted by 'filelumis' API" in error["message"]


@pytest.mark.parametrize(("api", "params", "code", "message"), [
    ("datasets", {"dataset": ZERO_BIAS, "block_name": "x"}, 118,
     "parameter 'block_name' is not accepted by 'datasets' API"),
    ("runs", {"detail": "1"}, 118, "parameter 'detail' is not accepted by 'runs' API"),
    ("blocks", {"detail": "1"}, 118, "Blocks API requires one of the following: "
     "[dataset block_name data_tier_name logical_file_name]"),
    ("files", {}, 118, "Files API with empty parameter map"),
    ("files", {"dataset": ZERO_BIAS, "run_num": "1"}, 118,
     "files API does not support run_num=1 when no lumi and lfns list provided"),
    ("files", {"dataset": ZERO_BIAS, "run_num": "379412-x"}, 107, "fail to parse run input"),
    ("filelumis", {}, 103, "unable to query filelumis"),
])
def test_parameter_checks(dbs: Dbs, api: str, params: dict[str, str], code: int,
                          message: str):
    error = _dbs_error(dbs.get(api, params))
    assert (error["error"]["code"], error["error"]["message"]) == (code, message)


def test_unknown_api_is_a_plain_404(dbs: Dbs):
    r = dbs.get("nosuchapi")
    assert r.status_code == 404 and r.text == "404 page not found\n"
