"""DBS reader client: which lumisections a dataset holds, as DAS computes them.

`run lumi dataset=D` is what DAS (dasgoclient) answers from `blocks?dataset=D` followed by
one `filelumis?block_name=B` per block, concurrently; `filelumis` refuses `dataset`
(docs/reference/dbs_caf.md A.1, A2). We do the same over one pooled keep-alive session that carries
the connection's grid proxy (`cert`) and CA (`verify`), so the code path is the production
one, and we de-duplicate (run, LS) across files, which dasgoclient does not.

Retries are services.http's; what an answer means for DBS is `_classify`: a 200 is a JSON
list (a body that is not complete JSON is tried again), the cmsweb login page, 401/403 and
a dbs2go error body are final, with one line saying what to check; other statuses follow
the shared retryable set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests

from dialsflow.config.connections import DbsSettings
from dialsflow.errors import ServiceError
from dialsflow.lfns import run_of
from dialsflow.lumis import LumiMap, to_ranges
from dialsflow.services import http
from dialsflow.services.http import Client, Outcome, Retrier, RetryPolicy, Unreachable

log = logging.getLogger("dialsflow")

MAX_RUN_FILTERS = 200  # run_num values per URL; beyond that, filter on our side
AUTH_HINT = ("check dbs_default cert/key (a valid grid proxy: voms-proxy-info) and "
             "verify (CA bundle or /etc/grid-security/certificates)")
#: A reader query as cheap as they come (one indexed name lookup, answered `[]`): the ping.
PING = ("datasets", {"dataset": "/DialsflowPreflight/Ping-v1/DQMIO"})


def _dbs_error(body: bytes) -> str | None:
    """The message of dbs2go's one-element error list (docs/reference/dbs_caf.md A.3), if
    it is one."""
    try:
        data = orjson.loads(body)
        error = data[0]["error"]
        return f"{error['message']} (DBS code {error['code']})"
    except (orjson.JSONDecodeError, LookupError, TypeError):
        return None


def _compact_runs(runs: Iterable[int]) -> list[str]:
    """run_num values dbs2go parses (`N`, `N-M`), consecutive runs merged."""
    return [f"{a}-{b}" if a != b else str(a) for a, b in to_ranges(runs)]


@dataclass(frozen=True)
class DbsFile:
    """A file of a dataset as DBS lists it: its LFN and when it was registered."""

    lfn: str
    created: int  # unix seconds (DBS `creation_date`)


class DbsClient(Client):
    """`DbsClient(DbsSettings.from_connection(conn)).run_lumis(dataset)`; thread-safe."""

    def __init__(self, settings: DbsSettings, *, policy: RetryPolicy | None = None,
                 workers: int = 8, timeout: tuple[float, float] = (10.0, 120.0)) -> None:
        _check_files(settings)
        self.settings = settings
        self.retrier = Retrier(policy or RetryPolicy())
        self.workers = workers
        self.timeout = timeout
        self.session = http.pooled_session(pool=workers, verify=settings.verify,
                                           cert=settings.cert)
        self.session.headers["Accept"] = "application/json"

    # ---- requests ------------------------------------------------------------------------

    def get(self, api: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """GET <DBSReader>/<api> and return its rows; retry what is transient."""
        url = f"{self.settings.url}/{api}"
        what = f"DBS {api}?" + "&".join(f"{k}={v}" for k, v in params.items()
                                         if not isinstance(v, list))

        def send() -> requests.Response:
            try:
                return self.session.get(url, params=params, timeout=self.timeout)
            except requests.exceptions.SSLError:
                raise ServiceError(f"TLS with DBS at {self.settings.url} failed: "
                                   f"{AUTH_HINT}") from None

        try:
            return self.retrier.call(send, lambda r: self._classify(r, what), what)
        except Unreachable as exc:
            raise Unreachable(f"cannot reach DBS at {self.settings.url}: {exc.cause}; check "
                              "the host of dbs_default", exc.cause) from None

    def _classify(self, r: requests.Response, what: str) -> Outcome[list[dict[str, Any]]]:
        body = r.content
        if r.status_code == 200:
            try:
                rows = orjson.loads(body)
            except orjson.JSONDecodeError:
                if body.lstrip().startswith(b"<"):  # cmsweb front end login page
                    return http.fail(f"{what}: DBS sent an HTML page instead of JSON "
                                     f"(cmsweb login page?): {AUTH_HINT}")
                return http.retry("body is not complete JSON")
            if not isinstance(rows, list):
                return http.fail(f"{what}: DBS answered {http.short_body(body)}, not a JSON list")
            return http.ok(rows)
        if r.status_code in (401, 403):
            return http.fail(f"DBS at {self.settings.url} refused access "
                             f"(HTTP {r.status_code}): {AUTH_HINT}")
        message = _dbs_error(body)
        if message is not None:
            return http.fail(f"{what}: DBS refused the query: {message}")
        return http.by_status(r, f"{what}: DBS answered HTTP {r.status_code}: "
                                 f"{http.short_body(body)}")

    def ping(self) -> None:
        """One cheap reader query: DBS reachable, the proxy accepted, the answer DBS's."""
        self.get(*PING)

    # ---- lumisections --------------------------------------------------------------------

    def blocks(self, dataset: str, runs: frozenset[int] | None = None) -> list[str]:
        """Block names of a dataset (those holding one of `runs`, when given)."""
        params: dict[str, Any] = {"dataset": dataset}
        if runs is not None and len(run_num := _compact_runs(runs)) <= MAX_RUN_FILTERS:
            params["run_num"] = run_num
        rows = self.get("blocks", params)
        return list(dict.fromkeys(row["block_name"] for row in rows))

    def files_by_run(self, dataset: str) -> dict[int, list[DbsFile]]:
        """Run → the dataset's valid files of that run (the run read from each LFN).
        Invalidated files (`is_file_valid` 0) are left out by DBS (`validFileOnly=1`)."""
        rows = self.get("files", {"dataset": dataset, "detail": 1, "validFileOnly": 1})
        out: dict[int, list[DbsFile]] = {}
        for row in rows:
            lfn = row.get("logical_file_name") or ""
            run = run_of(lfn)
            if run is not None and row.get("is_file_valid", 1):
                out.setdefault(run, []).append(DbsFile(lfn, int(row.get("creation_date") or 0)))
        return out

    def dataset_created(self, dataset: str) -> int | None:
        """When DBS registered the dataset (unix seconds), None if DBS does not know it."""
        rows = self.get("datasets", {"dataset": dataset, "dataset_access_type": "*",
                                     "detail": 1})
        found = [int(r["creation_date"]) for r in rows
                 if r.get("dataset") == dataset and r.get("creation_date")]
        return min(found, default=None)

    def dataset_exists(self, dataset: str) -> bool:
        rows = self.get("datasets", {"dataset": dataset, "dataset_access_type": "*"})
        return any(row.get("dataset") == dataset for row in rows)

    def run_lumis(self, dataset: str, runs: Iterable[int] | None = None) -> LumiMap:
        """Run -> LS numbers DBS holds for the dataset (only `runs`, when given).

        An unknown dataset raises `ServiceError`; a known one without such runs gives {}.
        """
        wanted = None if runs is None else frozenset(runs)
        if wanted is not None and not wanted:
            return {}
        t0 = time.monotonic()
        blocks = self.blocks(dataset, wanted)
        if not blocks:
            if not self.dataset_exists(dataset):
                raise ServiceError(f"dataset {dataset!r} is not in DBS at {self.settings.url}:"
                                   " check the name (and the DBS instance of dbs_default)")
            return {}
        run_num = _compact_runs(wanted) if wanted is not None else []

        def one(block: str) -> list[dict[str, Any]]:
            params: dict[str, Any] = {"block_name": block, "validFileOnly": 1}
            if run_num and len(run_num) <= MAX_RUN_FILTERS:
                params["run_num"] = run_num
            return self.get("filelumis", params)

        found: dict[int, set[int]] = {}
        with ThreadPoolExecutor(max_workers=min(self.workers, len(blocks)),
                                thread_name_prefix="dbs") as pool:
            for rows in pool.map(one, blocks):
                _collect(rows, wanted, found)
        lumis = {run: frozenset(ls) for run, ls in sorted(found.items())}
        log.info("DBS %s: %d runs, %d LS from %d blocks in %.1f s", dataset, len(lumis),
                 sum(map(len, lumis.values())), len(blocks), time.monotonic() - t0)
        return lumis


def _check_files(settings: DbsSettings) -> None:
    """A missing proxy or CA file is a configuration error: say so before any request
    (requests would raise a bare OSError from inside the adapter)."""
    cert = settings.cert
    for path in (cert if isinstance(cert, tuple) else (cert,)):
        if path and not Path(path).is_file():
            raise ServiceError(f"grid proxy/certificate file {path} of dbs_default does not "
                               "exist: create a proxy (voms-proxy-init) or fix extra.cert/key")
    if isinstance(settings.verify, str) and not Path(settings.verify).exists():
        raise ServiceError(f"CA path {settings.verify} of dbs_default (extra.verify) does not "
                           "exist")


def _collect(rows: list[dict[str, Any]], wanted: frozenset[int] | None,
             found: dict[int, set[int]]) -> None:
    """Add filelumis rows to `found`: dbs2go's flat rows (one integer LS each) or the old
    server's list rows (`lumi_section_num` a list), which dbs3-client also accepts."""
    for row in rows:
        run = int(row["run_num"])
        if wanted is not None and run not in wanted:
            continue
        ls = row["lumi_section_num"]
        target = found.setdefault(run, set())
        if isinstance(ls, list):
            target.update(int(n) for n in ls)
        else:
            target.add(int(ls))
