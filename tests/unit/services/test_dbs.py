"""DbsClient against the emulator's DBS twin, plus a stub cmsweb front end for what the twin
does not serve (the login page, the old list-shaped filelumis)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from dialsflow.config.connections import DbsSettings
from dialsflow.errors import ServiceError
from dialsflow.services.dbs import DbsClient
from dialsflow.services.http import RetryPolicy
from dialsflow_emulator.process import EmulatorProcess

from ..pipeline.test_completeness import EXPRESS, dataset_runs, ls_set
from ..pipeline.test_ingest import ZB

FAST = RetryPolicy(base_delay=0.05, max_delay=0.5)
PATH = "/dbs/prod/global/DBSReader"


def client_for(url: str, **settings: object) -> DbsClient:
    return DbsClient(DbsSettings(**{"url": url + PATH, "cert": None, "verify": True,
                                    **settings}), policy=FAST)


def dbs_truth(truth: dict, dataset: str) -> dict[int, frozenset[int]]:
    """What DBS holds in valid files (validFileOnly=1: an invalidated file's LS are not
    expected anywhere)."""
    runs = {run: frozenset(ls_set(info["dbs_valid_ls"]))
            for run, info in dataset_runs(truth, dataset).items() if info["in_dbs"]}
    return {run: ls for run, ls in runs.items() if ls}


@pytest.mark.parametrize("dataset", [ZB, EXPRESS])
def test_run_lumis_is_what_dbs_holds(emulator, truth, dataset):
    with client_for(emulator.url) as dbs:
        assert dbs.run_lumis(dataset) == dbs_truth(truth, dataset)


def test_run_lumis_restricted_to_runs(emulator, truth):
    expected = dbs_truth(truth, ZB)
    some = sorted(expected)[2:6]
    with client_for(emulator.url) as dbs:
        assert dbs.run_lumis(ZB, [*some, 1]) == {run: expected[run] for run in some}
        span = range(some[0], some[-1] + 1)
        assert dbs.run_lumis(ZB, span) == {r: expected[r] for r in expected if r in span}
        assert dbs.run_lumis(ZB, [1, 2]) == {}


def test_permanent_errors_are_one_clear_line(emulator):
    with client_for(emulator.url) as dbs:
        with pytest.raises(ServiceError, match=r"'/NoSuchPD/Run2024C-v1/DQMIO' is not in DBS"):
            dbs.run_lumis("/NoSuchPD/Run2024C-v1/DQMIO")
        with pytest.raises(ServiceError, match=r"parameter 'dataset' is not accepted by "
                                               r"'filelumis' API \(DBS code 118\)"):
            dbs.get("filelumis", {"dataset": ZB})


def test_cut_bodies_and_resets_are_retried(truth):
    with EmulatorProcess("--fault-rate", "0.5", "--fault-kinds", "truncate,reset") as emu:
        with client_for(emu.url) as dbs:
            assert dbs.run_lumis(ZB) == dbs_truth(truth, ZB)
        faults = emu.stats()["faults"]
    assert faults.get("truncate", 0) > 0 and faults.get("reset", 0) > 0


class FrontEnd(BaseHTTPRequestHandler):
    """cmsweb as a client without a valid proxy sees it, and an old DBS server's shapes."""

    LOGIN = (b"<html><head><title>CMSWEB Error: Authorisation required</title></head><body>"
             b"The site you requested is protected and requires you to authenticate</body>"
             b"</html>")

    def do_GET(self) -> None:
        if self.path.startswith("/denied/"):
            self._send(403, self.LOGIN, "text/html")
        elif self.path.startswith("/login/"):
            self._send(200, self.LOGIN, "text/html")
        elif "/blocks?" in self.path:
            self._send(200, orjson.dumps([{"block_name": f"{ZB}#a"}, {"block_name": f"{ZB}#b"}]))
        elif "/filelumis?" in self.path:  # one row per (file, run), LS as lists, overlapping
            b = parse_qs(urlsplit(self.path).query)["block_name"] == [f"{ZB}#b"]
            self._send(200, orjson.dumps([
                {"logical_file_name": "/store/x.root", "run_num": 379417,
                 "lumi_section_num": [3, 4, 5] if b else [1, 2, 3], "event_count": [0, 0, 0]},
                {"logical_file_name": "/store/y.root", "run_num": 379420,
                 "lumi_section_num": [7], "event_count": [0]}]))
        else:
            self._send(404, b"404 page not found\n", "text/plain")

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def front_end() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FrontEnd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_auth_pages_say_check_the_proxy(front_end, tmp_path):
    proxy = tmp_path / "x509up_u1000"
    proxy.write_text("not a real proxy")
    for prefix in ("/denied", "/login"):
        with client_for(front_end + prefix, cert=str(proxy), verify=str(tmp_path)) as dbs:
            assert (dbs.session.cert, dbs.session.verify) == (str(proxy), str(tmp_path))
            with pytest.raises(ServiceError, match="check dbs_default cert/key"):
                dbs.run_lumis(ZB)


def test_missing_proxy_file_fails_before_any_request(tmp_path):
    with pytest.raises(ServiceError, match="x509up_u1 of dbs_default does not exist"):
        client_for("http://127.0.0.1:9", cert=(str(tmp_path / "x509up_u1"),) * 2)


def test_list_shaped_filelumis_are_merged(front_end):
    with client_for(front_end) as dbs:
        assert dbs.run_lumis(ZB) == {379417: frozenset({1, 2, 3, 4, 5}),
                                     379420: frozenset({7})}
        assert dbs.run_lumis(ZB, [379420]) == {379420: frozenset({7})}


def test_invalidated_files_are_left_out(emulator, truth):
    """DBS keeps an invalidated file listed unless asked for valid files only; dialsflow
    always asks, so neither its file list nor its LS count such a file."""
    with client_for(emulator.url) as dbs:
        for bad in truth["planted"]["invalid_files"]:
            dataset = next(d["dataset"] for d in truth["datasets"]
                           if d["dataset_id"] == bad["dataset_id"])
            files = dbs.files_by_run(dataset)
            assert bad["lfn"] not in {f.lfn for f in files.get(bad["run"], [])}
            everything = dbs.get("files", {"dataset": dataset, "run_num": bad["run"]})
            assert bad["lfn"] in {row["logical_file_name"] for row in everything}
            valid = dataset_runs(truth, dataset)[bad["run"]]["dbs_valid_ls"]
            assert dbs.run_lumis(dataset, [bad["run"]]).get(bad["run"], frozenset()) == \
                frozenset(ls_set(valid))
            assert dbs.dataset_created(dataset) is not None
        assert dbs.dataset_created("/NoSuchPD/Run2024C-v1/DQMIO") is None
