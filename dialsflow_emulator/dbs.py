"""DBS reader twin (dbs2go): `/dbs/prod/global/DBSReader/{datasets,blocks,files,filelumis,runs}`.

Contract: docs/reference/dbs_caf.md part A (A.0 transport and layout, A.1 accepted
parameters and server rules, A.2 shapes, A.3 errors) and A2 (what dasgoclient asks).
A file is visible once `DqmFile.registered_at <= now`; a block once its first file is; a
dataset once it was created. Rows are flat JSON objects with alphabetical keys, streamed in
dbs2go's layout; every error is HTTP 400 with dbs2go's one-element error list.

File validity follows dbs2go (docs/reference/dbs_caf.md A.1): a file invalidated by `now`
has `is_file_valid` 0; `files` and `filelumis` leave it out only with `validFileOnly=1`
(dbs2go hides just `is_file_valid=-1` files by default, which this world has none of);
`blocks` and `runs` do not look at validity.

Not emulated: X.509 client-certificate authentication (served over plain HTTP; any client
is accepted), the lexicon regex validation of values (code 113), POST forms, and the per-IP
rate limiter. Parameters that dbs2go accepts but this world has no data for
(release_version, pset_hash, app_name, output_module_label, global_tag, parent_dataset,
sumOverLumi) are accepted and do not narrow the result.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .state import EmulatorState
from .world.basics import stable_int
from .world.entities import Dataset, DqmFile
from .world.model import World

PREFIX = "/dbs/prod/global/DBSReader"

#: dbs2go static/parameters.json (docs/reference/dbs_caf.md A.1).
ACCEPTED: dict[str, frozenset[str]] = {
    "datasets": frozenset((
        "dataset", "parent_dataset", "release_version", "pset_hash", "app_name",
        "output_module_label", "global_tag", "processing_version", "acquisition_era_name",
        "run_num", "physics_group_name", "logical_file_name", "primary_ds_name",
        "primary_ds_type", "processed_ds_name", "data_tier_name", "dataset_access_type",
        "prep_id", "create_by", "last_modified_by", "min_cdate", "max_cdate", "min_ldate",
        "max_ldate", "cdate", "ldate", "detail", "dataset_id", "is_dataset_valid")),
    "blocks": frozenset((
        "dataset", "block_name", "data_tier_name", "origin_site_name", "logical_file_name",
        "run_num", "min_cdate", "max_cdate", "min_ldate", "max_ldate", "cdate", "ldate",
        "open_for_writing", "detail")),
    "files": frozenset((
        "dataset", "block_name", "logical_file_name", "release_version", "pset_hash",
        "app_name", "output_module_label", "run_num", "origin_site_name", "lumi_list", "detail",
        "validFileOnly", "sumOverLumi")),
    "filelumis": frozenset(("logical_file_name", "block_name", "run_num", "validFileOnly")),
    "runs": frozenset(("run_num", "logical_file_name", "block_name", "dataset")),
}
BLOCKS_REQUIRE = ("dataset", "block_name", "data_tier_name", "logical_file_name")

#: dbs2go dbs/errors.go codes and their Explain() texts.
EXPLAIN = {
    103: "DBS DB query error, e.g. malformed SQL statement",
    107: "DBS parser error, e.g. malformed input parameter to the query",
    118: "DBS invalid parameter for the DBS API or validation error",
}
INVALID_PARAMS = "invalid parameter(s)"
T0_DN = "/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=cmst0/CN=658085/CN=Robot: CMS Tier0"
ORIGIN_SITE = "T0_CH_CERN_Disk"

Params = dict[str, list[str]]
Rec = dict[str, Any]

# --------------------------------------------------------------------------- errors


class DbsError(Exception):
    """A dbs2go DBSError: code, message, function and the wrapped reason."""

    def __init__(self, code: int, message: str, function: str,
                 reason: str = INVALID_PARAMS) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.function = function
        self.reason = reason

    def text(self) -> str:
        """DBSError.Error(): the multi-line form clients show as the HTTPError message."""
        return (f"\nDBSError\n   Code: {self.code}\n   Description: {EXPLAIN[self.code]}\n"
                f"   Function: {self.function}\n   Message: {self.message}\n"
                f"   Reason: {self.reason}\n")

    def record(self) -> Rec:
        return {"reason": self.reason, "message": self.message, "function": self.function,
                "code": self.code,
                "stacktrace": f"\ngoroutine 1 [running]:\ngithub.com/dmwm/dbs2go/{self.function}"
                              "(...)\n"}


def _error_response(request: Request, err: DbsError) -> Response:
    """dbs2go web/handlers.go responseMsg: a list holding one ServerError, HTTP 400."""
    path = request.url.path + (f"?{unquote(request.url.query)}" if request.url.query else "")
    client = request.client
    record = {
        "error": err.record(),
        "http": {
            "method": request.method, "code": 400,
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC"),
            "path": path, "user_agent": request.headers.get("user-agent", ""),
            "x_forwarded_host": request.headers.get("x-forwarded-host", ""),
            "x_forwarded_for": request.headers.get("x-forwarded-for", ""),
            "remote_addr": f"{client.host}:{client.port}" if client else "",
        },
        "exception": 400, "type": "HTTPError", "message": err.text(),
    }
    # Go marshals this struct in field order, not alphabetically.
    return Response(_go_json([record], sort_keys=False), 400, media_type="application/json")


# --------------------------------------------------------------------------- encoding


def _go_json(obj: Any, *, sort_keys: bool = True) -> bytes:
    """JSON as Go's encoder writes it: map keys sorted, <, > and & escaped."""
    body = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    return body.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")


def stream_layout(rows: Iterable[Rec]) -> bytes:
    """dbs2go executeAll: '[' newline, a ',' before every row after the first, ']' newline;
    exactly '[]' when nothing matched."""
    lines = [_go_json(row) + b"\n" for row in rows]
    if not lines:
        return b"[]"
    return b"[\n" + b",".join(lines) + b"]\n"


def ndjson_layout(rows: Iterable[Rec]) -> bytes:
    return b"".join(_go_json(row) + b"\n" for row in rows)


# --------------------------------------------------------------------------- parameters


def _like(pattern: str) -> Callable[[str], bool]:
    """dbs2go AddParam: a '*' in a value turns '=' into LIKE."""
    if "*" not in pattern:
        return pattern.__eq__
    regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
    return lambda value: regex.fullmatch(value) is not None


def _single(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def parse_runs(values: Sequence[str]) -> list[tuple[int, int]] | None:
    """dbs2go ParseRuns: `N`, `N-M` and `[N,M,...]`, as inclusive ranges; None = no filter."""
    if not values:
        return None
    out: list[tuple[int, int]] = []
    for raw in values:
        text = raw.strip()
        try:
            if re.fullmatch(r"\d+", text):
                out.append((int(text), int(text)))
            elif m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", text):
                out.append((int(m[1]), int(m[2])))
            elif text.startswith("[") and text.endswith("]"):
                out.extend((int(r.strip(" '\"")),) * 2 for r in text[1:-1].split(",") if r.strip())
            else:
                raise ValueError(text)
        except ValueError as exc:
            raise DbsError(107, "fail to parse run input", "dbs.ParseRuns",
                           f"invalid run input parameter {raw}") from exc
    return out


def _run_ok(ranges: list[tuple[int, int]] | None, run: int) -> bool:
    return ranges is None or any(lo <= run <= hi for lo, hi in ranges)


def _detail(params: Params) -> bool:
    return (_single(params, "detail") or "").lower() in ("1", "true")


def _unix(value: datetime) -> int:
    return int(value.timestamp())


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Catalogue:
    """The world as DBS shows it at one clock: visible datasets and files, in order."""

    world: World
    now: datetime

    def datasets(self) -> list[Dataset]:
        return sorted((d for d in self.world.datasets if d.created_at <= self.now),
                      key=lambda d: d.dataset_id)

    def files(self) -> list[DqmFile]:
        return [f for f in self.world.files if f.registered_at <= self.now]

    def changed(self, f: DqmFile) -> datetime:
        """A file's last modification: its registration, or its invalidation."""
        if f.invalidated_at is not None and f.invalidated_at <= self.now:
            return f.invalidated_at
        return f.registered_at

    def block_files(self, block: str) -> list[DqmFile]:
        """All files of a block, visible or not yet."""
        return _files_by_block(self.world).get(block, [])


@lru_cache(maxsize=8)
def _files_by_block(world: World) -> dict[str, list[DqmFile]]:
    out: dict[str, list[DqmFile]] = {}
    for f in world.files:
        out.setdefault(f.block_name, []).append(f)
    return out


def _select_files(cat: Catalogue, params: Params, lfn_exact: bool = False) -> list[DqmFile]:
    """Visible files matching dataset, block_name, logical_file_name, site, tier and run_num."""
    names = {d.dataset_id: d.name for d in cat.world.datasets}
    tests: list[Callable[[DqmFile], bool]] = []
    if (dataset := _single(params, "dataset")) is not None:
        match_dataset = _like(dataset)
        tests.append(lambda f: match_dataset(names[f.dataset_id]))
    if (block := _single(params, "block_name")) is not None:
        match_block = _like(block)
        tests.append(lambda f: match_block(f.block_name))
    if lfns := params.get("logical_file_name"):
        matchers = [lfn.__eq__ if lfn_exact else _like(lfn) for lfn in lfns]
        tests.append(lambda f: any(m(f.lfn) for m in matchers))
    if (site := _single(params, "origin_site_name")) is not None and not _like(site)(ORIGIN_SITE):
        return []
    if (tier := _single(params, "data_tier_name")) is not None and not _like(tier)("DQMIO"):
        return []
    if _single(params, "validFileOnly") == "1":  # dbs2go files.go / filelumis.go
        tests.append(lambda f: f.valid(cat.now))
    runs = parse_runs(params.get("run_num", []))
    return [f for f in cat.files() if _run_ok(runs, f.run) and all(t(f) for t in tests)]


def _distinct(recs: Iterable[Rec]) -> list[Rec]:
    """SELECT DISTINCT over flat records, first occurrence first."""
    seen: dict[bytes, Rec] = {}
    for rec in recs:
        seen.setdefault(_go_json(rec), rec)
    return list(seen.values())


def _maybe_run(rec: Rec, f: DqmFile, params: Params) -> Rec:
    """With run_num given, blocks/files select DISTINCT (..., FL.RUN_NUM): the run is a column."""
    return {**rec, "run_num": f.run} if "run_num" in params else rec


# --------------------------------------------------------------------------- records


def _block_id(block_name: str) -> int:
    return 20_000_000 + stable_int("dbs-block", block_name) % 10_000_000


def _dataset_record(cat: Catalogue, d: Dataset) -> Rec:
    """datasets.sql detail columns; modified when its newest visible file was registered."""
    registered = [cat.changed(f) for f in cat.files() if f.dataset_id == d.dataset_id]
    return {
        "acquisition_era_name": d.era, "create_by": T0_DN,
        "creation_date": _unix(d.created_at), "data_tier_name": "DQMIO", "dataset": d.name,
        "dataset_access_type": "VALID", "dataset_id": d.dataset_id,
        "last_modification_date": _unix(max([d.created_at, *registered])),
        "last_modified_by": T0_DN, "physics_group_name": "NoGroup", "prep_id": None,
        "primary_ds_name": d.primary, "primary_ds_type": "data",
        "processed_ds_name": d.processed, "processing_version": d.processing_version,
        "xtcrosssection": None,
    }


def _block_record(cat: Catalogue, block_name: str) -> Rec:
    """blocks.sql detail columns; open for writing while some of its files are to come."""
    everything = cat.block_files(block_name)
    visible = [f for f in everything if f.registered_at <= cat.now]
    dataset = cat.world.dataset_by_id[visible[0].dataset_id]
    return {
        "block_id": _block_id(block_name), "block_name": block_name,
        "block_size": sum(f.size for f in visible), "create_by": T0_DN,
        "creation_date": _unix(min(f.registered_at for f in visible)),
        "dataset": dataset.name, "dataset_id": dataset.dataset_id, "file_count": len(visible),
        "last_modification_date": _unix(max(f.registered_at for f in visible)),
        "last_modified_by": T0_DN, "open_for_writing": int(len(visible) < len(everything)),
        "origin_site_name": ORIGIN_SITE,
    }


def _file_record(cat: Catalogue, f: DqmFile) -> Rec:
    """files.sql detail columns; DQMIO event counts are 0 (so filelumis has NULL)."""
    return {
        "adler32": f"{stable_int('dbs-adler32', f.file_id, bits=32):08x}",
        "auto_cross_section": 0.0, "block_id": _block_id(f.block_name),
        "block_name": f.block_name, "branch_hash_id": None,
        "check_sum": str(stable_int("dbs-cksum", f.file_id, bits=32)), "create_by": T0_DN,
        "creation_date": _unix(f.registered_at),
        "dataset": cat.world.dataset_by_id[f.dataset_id].name, "dataset_id": f.dataset_id,
        "event_count": 0, "file_id": f.file_id, "file_size": f.size, "file_type": "EDM",
        "file_type_id": 1, "is_file_valid": int(f.valid(cat.now)),
        "last_modification_date": _unix(cat.changed(f)), "last_modified_by": T0_DN,
        "logical_file_name": f.lfn, "md5": None,
    }


# --------------------------------------------------------------------------- APIs

#: datasets parameters compared with a detail column ('*' wildcards allowed).
DATASET_COLUMNS = {
    "dataset": "dataset", "primary_ds_name": "primary_ds_name",
    "processed_ds_name": "processed_ds_name", "data_tier_name": "data_tier_name",
    "acquisition_era_name": "acquisition_era_name", "processing_version": "processing_version",
    "dataset_id": "dataset_id", "physics_group_name": "physics_group_name",
    "primary_ds_type": "primary_ds_type", "prep_id": "prep_id", "create_by": "create_by",
    "last_modified_by": "last_modified_by", "cdate": "creation_date",
    "ldate": "last_modification_date",
}
#: min_/max_ dates: (column, +1 for a lower bound, -1 for an upper bound); 0 = unset.
DATE_BOUNDS = {"min_cdate": ("creation_date", 1), "max_cdate": ("creation_date", -1),
               "min_ldate": ("last_modification_date", 1),
               "max_ldate": ("last_modification_date", -1)}


def _dataset_matches(rec: Rec, params: Params) -> bool:
    for param, column in DATASET_COLUMNS.items():
        value = _single(params, param)
        if value is not None and not _like(value)(str(rec[column])):
            return False
    for param, (column, sign) in DATE_BOUNDS.items():
        value = _single(params, param)
        if value and value.isdigit() and int(value) > 0 and sign * (rec[column] - int(value)) < 0:
            return False
    access = _single(params, "dataset_access_type") or "VALID"  # dbs2go: default VALID only
    valid = _single(params, "is_dataset_valid")
    return _like(access)(rec["dataset_access_type"]) and valid in (None, "", "1")


def datasets(cat: Catalogue, params: Params) -> list[Rec]:
    """Datasets; run_num / logical_file_name keep those with such a visible file."""
    records = [r for r in (_dataset_record(cat, d) for d in cat.datasets())
               if _dataset_matches(r, params)]
    if "run_num" in params or "logical_file_name" in params:
        narrowed = {k: v for k, v in params.items() if k in ("run_num", "logical_file_name")}
        having = {f.dataset_id for f in _select_files(cat, narrowed)}
        records = [r for r in records if r["dataset_id"] in having]
    if _detail(params):
        return records
    return [{"dataset": r["dataset"]} for r in records]


def blocks(cat: Catalogue, params: Params) -> list[Rec]:
    """Blocks with at least one visible file. dbs2go requires one of BLOCKS_REQUIRE and
    checks it by searching the printed parameter map, values included."""
    printed = " ".join(f"{k}:{v}" for k, values in params.items() for v in values)
    if not re.search("|".join(BLOCKS_REQUIRE), printed):
        raise DbsError(118, "Blocks API requires one of the following: "
                       f"[{' '.join(BLOCKS_REQUIRE)}]", "dbs.blocks.Blocks")
    selected = _select_files(cat, params)
    wanted = _single(params, "open_for_writing")
    if wanted is not None:
        selected = [f for f in selected
                    if str(_block_record(cat, f.block_name)["open_for_writing"]) == wanted]
    detail = _detail(params)
    return _distinct(_maybe_run(_block_record(cat, f.block_name) if detail else
                                {"block_name": f.block_name}, f, params) for f in selected)


def _lumi_list(params: Params) -> set[int] | None:
    values = params.get("lumi_list")
    if not values:
        return None
    try:
        return {int(part) for v in values for part in v.strip("[] ").split(",") if part.strip()}
    except ValueError as exc:
        raise DbsError(118, "invalid lumi_list parameter", "dbs.files.Files",
                       str(exc)) from exc


def files(cat: Catalogue, params: Params) -> list[Rec]:
    """Visible files; detail=1 gives files.sql's columns (docs/reference/dbs_caf.md A.2)."""
    if not params:
        raise DbsError(118, "Files API with empty parameter map", "dbs.files.Files")
    if (params.get("run_num") == ["1"] and not params.get("lumi_list")
            and not params.get("logical_file_name")):
        raise DbsError(118, "files API does not support run_num=1 when no lumi and lfns list "
                       "provided", "dbs.files.Files")
    lumis = _lumi_list(params)
    selected = [f for f in _select_files(cat, params)
                if lumis is None or lumis.intersection(f.ls_numbers)]
    detail = _detail(params)
    return _distinct(_maybe_run(_file_record(cat, f) if detail else
                                {"logical_file_name": f.lfn}, f, params) for f in selected)


def filelumis(cat: Catalogue, params: Params) -> list[Rec]:
    """One flat row per (file, run, lumi) with an integer lumi, as dbs2go serves them."""
    if not params.get("logical_file_name") and not params.get("block_name"):
        # dbs2go builds SQL without a FROM clause and fails in the database (inferred, A.1).
        inner = DbsError(103, "query error", "dbs.executeAll", "ORA-00923: FROM keyword not "
                         "found where expected")
        raise DbsError(103, "unable to query filelumis", "dbs.filelumis.FileLumis",
                       inner.text())
    return [
        {"event_count": None, "logical_file_name": f.lfn, "lumi_section_num": ls,
         "run_num": f.run}
        for f in _select_files(cat, params, lfn_exact=True)
        for ls in f.ls_numbers
    ]


def runs(cat: Catalogue, params: Params) -> list[Rec]:
    """Distinct run numbers of the selected visible files, ascending."""
    return [{"run_num": run} for run in sorted({f.run for f in _select_files(cat, params)})]


APIS: dict[str, Callable[[Catalogue, Params], list[Rec]]] = {
    "datasets": datasets, "blocks": blocks, "files": files, "filelumis": filelumis,
    "runs": runs,
}

# --------------------------------------------------------------------------- HTTP


def _params(request: Request, api: str) -> Params:
    """Query parameters as lists, refusing keys the API does not accept (dbs2go
    CheckQueryParameters; the first offending key in query order is reported)."""
    params: Params = {}
    for key, value in request.query_params.multi_items():
        if key not in ACCEPTED[api]:
            raise DbsError(118, f"parameter '{key}' is not accepted by '{api}' API",
                           "dbs.parameters.CheckQueryParameters")
        params.setdefault(key, []).append(value)
    return params


def _rows_response(request: Request, rows: list[Rec]) -> Response:
    """JSON list in streaming layout, or ndjson on request; gzip when the client takes it."""
    if request.headers.get("accept") == "application/ndjson":
        body, media = ndjson_layout(rows), "application/ndjson"
    else:
        body, media = stream_layout(rows), "application/json"
    headers = {}
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Response(body, 200, media_type=media, headers=headers)


def routes(state: EmulatorState) -> list[BaseRoute]:
    def endpoint(request: Request) -> Response:
        api = request.path_params["api"]
        handler = APIS.get(api)
        if handler is None:  # what Go's ServeMux answers for an unregistered path
            return PlainTextResponse("404 page not found\n", 404)
        try:
            params = _params(request, api)
            rows = handler(Catalogue(state.world, state.now_for(request.headers)), params)
        except DbsError as err:
            return _error_response(request, err)
        return _rows_response(request, rows)

    return [Route(PREFIX + "/{api}", endpoint, methods=["GET"])]
