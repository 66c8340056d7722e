"""DBS reader client: which lumisections a dataset holds, as DAS computes them.

`run lumi dataset=D` is what DAS (dasgoclient) answers from `blocks?dataset=D` followed by
one `filelumis?block_name=B` per block, concurrently; `filelumis` refuses `dataset`
(das_caf_api.md A.1, A2). We do the same over one pooled keep-alive session that carries
the connection's grid proxy (`cert`) and CA (`verify`), so the code path is the production
one, and we de-duplicate (run, LS) across files, which dasgoclient does not.

Transient failures: status codes (429 with Retry-After, 502/503/504) and connection errors
are retried by urllib3's `Retry` on the adapter, with our full-jitter backoff (urllib3 1.26
has none); a body cut short is retried by a small loop around it. Permanent failures
(a DBS error body, the cmsweb login page, an unknown dataset) raise `ServiceError` with
one line saying what to check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import requests

from dialsflow.config.connections import DbsSettings
from dialsflow.errors import ServiceError
from dialsflow.lumis import LumiMap, to_ranges
from dialsflow.services.http import (
    RETRYABLE_STATUS,
    RetryPolicy,
    describe_error,
    retrying_session,
    short_body,
)

log = logging.getLogger("dialsflow")

MAX_RUN_FILTERS = 200  # run_num values per URL; beyond that, filter on our side
AUTH_HINT = ("check dbs_default cert/key (a valid grid proxy: voms-proxy-info) and "
             "verify (CA bundle or /etc/grid-security/certificates)")


def _dbs_error(body: bytes) -> str | None:
    """The message of dbs2go's one-element error list (das_caf_api.md A.3), if it is one."""
    try:
        data = orjson.loads(body)
        error = data[0]["error"]
        return f"{error['message']} (DBS code {error['code']})"
    except (orjson.JSONDecodeError, LookupError, TypeError):
        return None


def _compact_runs(runs: Iterable[int]) -> list[str]:
    """run_num values dbs2go parses (`N`, `N-M`), consecutive runs merged."""
    return [f"{a}-{b}" if a != b else str(a) for a, b in to_ranges(runs)]


class DbsClient:
    """`DbsClient(DbsSettings.from_connection(conn)).run_lumis(dataset)`; thread-safe."""

    def __init__(self, settings: DbsSettings, *, policy: RetryPolicy | None = None,
                 workers: int = 8, timeout: tuple[float, float] = (10.0, 120.0)) -> None:
        _check_files(settings)
        self.settings = settings
        self.policy = policy or RetryPolicy()
        self.workers = workers
        self.timeout = timeout
        self.session = retrying_session(self.policy, pool=workers, verify=settings.verify,
                                        cert=settings.cert)
        self.session.headers["Accept"] = "application/json"

    # ---- requests ------------------------------------------------------------------------

    def get(self, api: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """GET <DBSReader>/<api> and return its rows; retry what is transient."""
        url = f"{self.settings.url}/{api}"
        what = f"DBS {api}?" + "&".join(f"{k}={v}" for k, v in params.items()
                                         if not isinstance(v, list))
        cause = ""
        for failures in range(self.policy.attempts):
            if failures:
                time.sleep(self.policy.delay(failures))
            try:
                r = self.session.get(url, params=params, timeout=self.timeout)
                body = r.content
            except requests.exceptions.SSLError:
                raise ServiceError(f"TLS with DBS at {self.settings.url} failed: "
                                   f"{AUTH_HINT}") from None
            except (requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError):
                cause = "body cut short"
                continue
            except requests.exceptions.RetryError as exc:
                raise ServiceError(f"{what}: gave up after {self.policy.attempts} attempts "
                                   f"({exc})") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise ServiceError(f"cannot reach DBS at {self.settings.url}: "
                                   f"{describe_error(exc)}; check the host of dbs_default"
                                   ) from None
            if r.status_code == 200:
                try:
                    rows = orjson.loads(body)
                except orjson.JSONDecodeError:
                    if body.lstrip().startswith(b"<"):  # cmsweb front end login page
                        raise ServiceError(f"{what}: DBS sent an HTML page instead of JSON "
                                           f"(cmsweb login page?): {AUTH_HINT}") from None
                    cause = "body is not complete JSON"
                    continue
                if not isinstance(rows, list):
                    raise ServiceError(f"{what}: DBS answered {short_body(body)}, not a JSON list")
                return rows
            if r.status_code in (401, 403):
                raise ServiceError(f"DBS at {self.settings.url} refused access (HTTP "
                                   f"{r.status_code}): {AUTH_HINT}")
            if r.status_code in RETRYABLE_STATUS:  # urllib3 already spent the budget
                raise ServiceError(f"{what}: gave up after {self.policy.attempts} attempts, "
                                   f"last answer HTTP {r.status_code}")
            message = _dbs_error(body)
            if message is not None:
                raise ServiceError(f"{what}: DBS refused the query: {message}")
            raise ServiceError(f"{what}: DBS answered HTTP {r.status_code}: {short_body(body)}")
        raise ServiceError(f"{what}: gave up after {self.policy.attempts} attempts, last "
                           f"cause: {cause}")

    # ---- lumisections --------------------------------------------------------------------

    def blocks(self, dataset: str, runs: frozenset[int] | None = None) -> list[str]:
        """Block names of a dataset (those holding one of `runs`, when given)."""
        params: dict[str, Any] = {"dataset": dataset}
        if runs is not None and len(run_num := _compact_runs(runs)) <= MAX_RUN_FILTERS:
            params["run_num"] = run_num
        rows = self.get("blocks", params)
        return list(dict.fromkeys(row["block_name"] for row in rows))

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
            params: dict[str, Any] = {"block_name": block}
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

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> DbsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
