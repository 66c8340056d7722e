"""DIALS REST API twin: `/api/v1/...` as cmsdials 2.4.1 and the scripts built on it see it.

Contract: shared/reference/dials_api.md (§1 common rules, §2 endpoints, §3 auth) and the
OpenAPI file next to it. Every answer is derived from the `World` at the request's clock:
a run, lumisection or histogram exists in DIALS iff its LS is in
`World.dials_ls(dataset_id, run, now)`.

Speed (the twin must serve ≥ 50 MB/s of th2 JSON on one core): th1/th2 rows are serialised
once and kept as bytes in an LRU bounded by size; a page is the join of its rows; whole
bodies are cached 30 s per URL like DIALS' Redis cache. Keys are walked lazily in
composite-key order with keyset (bisect) skipping, so no request materialises the rows of
a whole dataset.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import math
import re
import secrets
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from itertools import islice
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import orjson
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from . import caf as caf_area
from . import oms
from .histograms import entries_for, histogram
from .httputil import (
    base_url,
    bearer_token,
    json_response,
    not_found_html,
    raw_json,
    server_error_html,
)
from .state import DIALS_AUDIENCE, DIALS_PUBLIC_CLIENT, EmulatorState
from .tokens import TokenError
from .world import (
    DEFAULT_WORKSPACE,
    WORKSPACE_NAMES,
    WORLD_KINDS,
    Dataset,
    DqmFile,
    MlModel,
    MonitorElement,
    Run,
    World,
    iso,
    ranges,
    stable_int,
    utc,
)

API = "/api/v1"
PAGE_SIZE = 10  # DRF PAGE_SIZE in DIALS settings
MAX_PAGE_SIZE = 500  # larger asks are clamped silently
OFFSET_CUTOFF = 1000  # DRF CursorPagination.offset_cutoff
ROW_CACHE_BYTES = 512 * 2**20
PAGE_CACHE_BYTES = 256 * 2**20
PAGE_CACHE_TTL_S = 30.0  # DIALS CACHE_TTL
BIG = 2**63  # beyond any id: clamps absurd filter values before int()
CAF_BASE = "/CAF/certification/"
NUMPY = orjson.OPT_SERIALIZE_NUMPY

Key = tuple[int, ...]
Level = Callable[[Key], Sequence[int]]


class _DigitsConvertor(Convertor[int]):
    """Like Starlette's `int`, but bounded so absurd path numbers fail to match, not to parse."""

    regex = "[0-9]{1,30}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("dials_int", _DigitsConvertor())


class ApiError(Exception):
    """Abort a request with this response (DRF raises exceptions the same way)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _detail(status: int, text: str) -> ApiError:
    return ApiError(json_response({"detail": text}, status))


def _no_match(model: str) -> ApiError:
    return _detail(404, f"No {model} matches the given query.")


# --------------------------------------------------------------------------- caches


class BytesCache:
    """LRU of bytes bounded by their total size, with an optional time to live."""

    def __init__(self, budget: int, ttl: float | None = None) -> None:
        self.budget = budget
        self.ttl = ttl
        self.size = 0
        self._items: collections.OrderedDict[Any, tuple[float, bytes]] = (
            collections.OrderedDict())

    def get(self, key: Any) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        if self.ttl is not None and item[0] < time.monotonic():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: Any, value: bytes) -> None:
        if len(value) > self.budget // 4:
            return  # one huge body must not flush everything else
        if key in self._items:
            self._drop(key)
        expires = time.monotonic() + self.ttl if self.ttl is not None else math.inf
        self._items[key] = (expires, value)
        self.size += len(value)
        while self.size > self.budget:
            self._drop(next(iter(self._items)))

    def _drop(self, key: Any) -> None:
        self.size -= len(self._items.pop(key)[1])


# --------------------------------------------------------------------------- auth


def _denied(code: str, detail: str) -> Response:
    """403, never 401: DRF's first authenticator (X-CLIENT-SECRET) sends no WWW-Authenticate."""
    return json_response({"detail": detail, "code": code}, 403)


def authenticate(state: EmulatorState, request: Request) -> Response | None:
    """None when the request may proceed, else the 403 DIALS answers (dials_api.md §1, §3)."""
    secret = request.headers.get("x-client-secret")
    if secret:  # checked first: a wrong secret fails even next to a valid bearer token
        if secret in state.settings.clients.values():
            return None
        return _denied("token_not_valid", "Token is invalid or expired")
    token = bearer_token(request)
    if token is None:
        return _denied("authorization_not_found", "Authorization header not found.")
    try:
        state.signer.verify(token, audience=DIALS_AUDIENCE)
    except TokenError as exc:
        return _denied(exc.code, exc.detail)
    return None


# --------------------------------------------------------------------------- filters

#: Filter names whose values are numbers (django-filter NumberFilter: "Enter a number.").
NUMERIC = frozenset({"dataset_id", "file_id", "run_number", "ls_number", "me_id", "entries",
                     "min_size", "dim", "model_id", "id"})


def _number(raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation as exc:
        raise ValueError(raw) from exc
    if not value.is_finite():
        raise ValueError(raw)
    return max(min(value, Decimal(BIG)), Decimal(-BIG))


def _boolean(raw: str) -> bool | None:
    """django-filter BooleanFilter: anything unrecognised means 'no filter'."""
    return {"true": True, "1": True, "false": False, "0": False}.get(raw.strip().lower())


class Params:
    """The filter parameters one endpoint declares, validated as django-filter does.

    Undeclared parameters are ignored (cmsdials sends a typo, `ls_numbet__lte`); empty
    values mean 'no filter'; a bad number is a field-keyed 400. Regexes compile lazily so a
    bad one fails when the query runs (HTML 500), after cursor checks.
    """

    def __init__(self, query: Mapping[str, str], declared: Sequence[str]) -> None:
        self._values: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for name in declared:
            raw = query.get(name)
            if not raw:
                continue
            if name.split("__")[0] not in NUMERIC:
                self._values[name] = raw
                continue
            try:
                if name.endswith("__in"):
                    self._values[name] = frozenset(_number(v) for v in raw.split(",") if v)
                else:
                    self._values[name] = _number(raw)
            except ValueError:
                errors[name] = ["Enter a number."]
        if errors:
            raise ApiError(json_response(errors, 400))

    def text(self, name: str) -> str | None:
        return self._values.get(name)

    def number(self, name: str) -> Decimal | None:
        return self._values.get(name)

    def flag(self, name: str) -> bool | None:
        raw = self._values.get(name)
        return None if raw is None else _boolean(raw)

    def regex(self, name: str) -> re.Pattern[str] | None:
        pattern = self._values.get(name)
        if pattern is None:
            return None
        try:
            return re.compile(pattern)
        except (re.error, OverflowError, RecursionError, ValueError) as exc:
            raise ApiError(server_error_html()) from exc  # PostgreSQL rejects it: HTML 500

    def int_range(self, name: str) -> tuple[int, int]:
        """Inclusive bounds from `name`, `name__gte`, `name__lte` (empty when lo > hi)."""
        lo, hi = -BIG, BIG
        exact = self.number(name)
        if exact is not None:
            if exact != exact.to_integral_value():
                return 1, 0  # an integer column never equals 5.5
            lo = hi = int(exact)
        gte, lte = self.number(name + "__gte"), self.number(name + "__lte")
        if gte is not None:
            lo = max(lo, math.ceil(gte))
        if lte is not None:
            hi = min(hi, math.floor(lte))
        return lo, hi

    def many(self, name: str) -> frozenset[Decimal] | None:
        """The comma list of `name__in` (None: not given)."""
        return self._values.get(name + "__in")

    def id_set(self, name: str) -> frozenset[Decimal] | None:
        """Allowed values from `name` and `name__in` (None: unfiltered)."""
        allowed = self.many(name)
        exact = self.number(name)
        if exact is not None:
            allowed = frozenset({exact}) if allowed is None else allowed & {exact}
        return allowed

    def matcher(self, name: str) -> Callable[[str], bool]:
        """`name` (exact) and `name__regex` (unanchored, case-sensitive search), AND-ed."""
        exact, pattern = self.text(name), self.regex(name + "__regex")
        if exact is None and pattern is None:
            return _always
        return lambda s: (exact is None or s == exact) and (
            pattern is None or pattern.search(s) is not None)


def _always(_: object) -> bool:
    return True


NO_PARAMS = Params({}, ())

PAGING = ("next_token", "page_size", "fields")
DATASET_PARAMS = ("dataset", "dataset__regex")
RUN_PARAMS = ("run_number", "run_number__lte", "run_number__gte")
LS_PARAMS = ("ls_number", "ls_number__lte", "ls_number__gte")
LFN_PARAMS = ("logical_file_name", "logical_file_name__regex")
ME_PARAMS = ("me", "me__regex")


# --------------------------------------------------------------------------- cursors


@dataclass(frozen=True)
class Cursor:
    """DRF cursor: position = ordering values of a row; reverse = page before it."""

    position: Key | None
    reverse: bool = False
    offset: int = 0


def encode_cursor(cursor: Cursor) -> str:
    """base64 of `o=..&r=1&p=<url-quoted JSON list of strings>` (dials_api.md §1)."""
    tokens: dict[str, str] = {}
    if cursor.offset:
        tokens["o"] = str(cursor.offset)
    if cursor.reverse:
        tokens["r"] = "1"
    if cursor.position is not None:
        tokens["p"] = json.dumps([str(v) for v in cursor.position])
    return base64.b64encode(urlencode(tokens).encode("ascii")).decode("ascii")


def decode_cursor(token: str | None, key_len: int) -> Cursor | None:
    """Parse `next_token`; anything undecodable is DRF's 404 'Invalid cursor'."""
    if not token:
        return None
    try:
        tokens = parse_qs(base64.b64decode(token.encode("ascii")).decode("ascii"),
                          keep_blank_values=True)
        offset = int(tokens.get("o", ["0"])[0])
        if offset < 0:
            raise ValueError(offset)
        reverse = bool(int(tokens.get("r", ["0"])[0]))
        raw = tokens.get("p", [None])[0]
        position = None
        if raw is not None:
            values = json.loads(raw)
            if not isinstance(values, list) or len(values) != key_len:
                raise ValueError(raw)
            position = tuple(int(str(v)) for v in values)
    except (ValueError, TypeError, binascii.Error, RecursionError) as exc:
        raise _detail(404, "Invalid cursor") from exc
    return Cursor(position, reverse, min(offset, OFFSET_CUTOFF))


def page_size(raw: str | None) -> int:
    """DRF `_positive_int(strict=True, cutoff=500)`, falling back to the default."""
    try:
        size = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return PAGE_SIZE
    return min(size, MAX_PAGE_SIZE) if size > 0 else PAGE_SIZE


def page_url(request: Request, cursor: Cursor | None) -> str | None:
    """Absolute request URL, next_token replaced, params sorted (DRF replace_query_param)."""
    if cursor is None:
        return None
    query = parse_qs(request.url.query, keep_blank_values=True)
    query["next_token"] = [encode_cursor(cursor)]
    return f"{base_url(request)}{request.url.path}?{urlencode(sorted(query.items()), doseq=True)}"


# --------------------------------------------------------------------------- key walking


@dataclass(frozen=True)
class Selection:
    """A key space: level d lists the sorted values of key[d] under a prefix; `keep` filters."""

    levels: tuple[Level, ...]
    keep: Callable[[Key], bool] | None = None

    def walk(self, cursor: Key | None = None, reverse: bool = False) -> Iterator[Key]:
        """Keys strictly after (before, if reverse) the cursor, in (reverse) key order."""
        keys = _walk(self.levels, (), cursor, reverse)
        return keys if self.keep is None else filter(self.keep, keys)

    def contains(self, key: Key) -> bool:
        for depth in range(len(self.levels)):
            values = self.levels[depth](key[:depth])
            i = bisect_left(values, key[depth])
            if i == len(values) or values[i] != key[depth]:
                return False
        return self.keep is None or self.keep(key)


def _walk(levels: Sequence[Level], prefix: Key, cursor: Key | None,
          reverse: bool) -> Iterator[Key]:
    """Lexicographic keyset walk: bisect to the cursor at each level, descend lazily."""
    depth = len(prefix)
    values = levels[depth](prefix)
    last = depth == len(levels) - 1
    mark = None if cursor is None else cursor[depth]
    if reverse:
        end = len(values) if mark is None else bisect_right(values, mark)
        indices: Iterator[int] | range = range(end - 1, -1, -1)
    else:
        indices = range(0 if mark is None else bisect_left(values, mark), len(values))
    for i in indices:
        key = (*prefix, values[i])
        on_cursor = values[i] == mark
        if last:
            if not on_cursor:
                yield key
        else:
            yield from _walk(levels, key, cursor if on_cursor else None, reverse)


@dataclass(frozen=True)
class Page:
    keys: list[Key]
    next: Cursor | None
    previous: Cursor | None


def paginate(selection: Selection, cursor: Cursor | None, size: int) -> Page:
    """Fetch size+1 keys to decide `next` (null exactly on the last page), as DRF does."""
    reverse = cursor is not None and cursor.reverse
    position = cursor.position if cursor else None
    offset = cursor.offset if cursor else 0
    got = list(islice(selection.walk(position, reverse), offset, offset + size + 1))
    keys, more = got[:size], len(got) > size
    if not reverse:
        started = cursor is not None and (position is not None or offset > 0)
        previous = Cursor(keys[0] if keys else position, reverse=True) if started else None
        return Page(keys, Cursor(keys[-1]) if more else None, previous)
    keys.reverse()
    has_next = position is not None or offset > 0
    # An empty page before the first row: `next` restarts from the top (a token without p).
    following = Cursor(keys[-1] if keys else None) if has_next else None
    return Page(keys, following, Cursor(keys[0], reverse=True) if more else None)


# --------------------------------------------------------------------------- request context


@dataclass(frozen=True)
class Ctx:
    """One request's view of DIALS: a workspace of the world at the request's clock."""

    state: EmulatorState
    workspace: str
    now: datetime
    datasets: dict[int, Dataset]  # known to DIALS at `now`, ascending id
    mes: dict[int, MonitorElement]  # of the workspace, ascending me_id

    @property
    def world(self) -> World:
        return self.state.world

    @property
    def seed(self) -> int:
        return self.state.settings.seed

    def dials_ls(self, dataset_id: int, run: int) -> tuple[int, ...]:
        return self.world.dials_ls(dataset_id, run, self.now)

    def me_named(self, name: str) -> MonitorElement | None:
        return next((m for m in self.mes.values() if m.name == name), None)

    def me_count(self, dim: int) -> int:
        return sum(1 for m in self.mes.values() if m.dim == dim)

    def runs_in_dials(self, dataset_id: int) -> list[int]:
        return [r.number for r in self.world.runs if self.dials_ls(dataset_id, r.number)]


def make_ctx(state: EmulatorState, workspace: str, now: datetime) -> Ctx:
    world = state.world
    datasets = sorted((d for d in world.datasets_in(workspace) if d.created_at <= now),
                      key=lambda d: d.dataset_id)
    mes = sorted(world.mes_in(workspace), key=lambda m: m.me_id)
    return Ctx(state, workspace, now, {d.dataset_id: d for d in datasets},
               {m.me_id: m for m in mes})


def request_workspace(request: Request) -> str:
    """`Workspace` header (case-insensitive); unknown names are a 404 after auth."""
    name = request.headers.get("workspace") or DEFAULT_WORKSPACE
    if name not in WORKSPACE_NAMES:
        raise _detail(404, f"Workspace '{name}' not found")
    return name


# --------------------------------------------------------------------------- levels


def dataset_level(ctx: Ctx, p: Params) -> Level:
    ids, named = p.id_set("dataset_id"), p.matcher("dataset")
    chosen = [i for i, d in ctx.datasets.items() if (ids is None or i in ids) and named(d.name)]
    return lambda prefix: chosen


def run_level(ctx: Ctx, p: Params, at: int) -> Level:
    """Runs of the dataset at key[at] that DIALS holds LS of, within the run filters."""
    lo, hi = p.int_range("run_number")
    allowed = p.many("run_number")
    numbers = [r.number for r in ctx.world.runs_between(lo, hi)
               if allowed is None or r.number in allowed]
    return lambda prefix: [n for n in numbers if ctx.dials_ls(prefix[at], n)]


def file_matcher(p: Params) -> Callable[[DqmFile], bool] | None:
    """th1/th2 `file_id` and `logical_file_name(__regex)`: None when not filtered."""
    ids, named = p.id_set("file_id"), p.matcher("logical_file_name")
    if ids is None and named is _always:
        return None
    return lambda f: (ids is None or f.file_id in ids) and named(f.lfn)


def ls_level(ctx: Ctx, p: Params, at: int,
             files: Callable[[DqmFile], bool] | None = None) -> Level:
    """LS of (key[at], key[at+1]) in DIALS, within the LS filters and the chosen files."""
    lo, hi = p.int_range("ls_number")

    def level(prefix: Key) -> Sequence[int]:
        dataset_id, run = prefix[at], prefix[at + 1]
        numbers = ctx.dials_ls(dataset_id, run)
        numbers = numbers[bisect_left(numbers, lo):bisect_right(numbers, hi)]
        if files is None:
            return numbers
        spans = [f.ls_numbers for f in ctx.world.files_of(dataset_id, run) if files(f)]
        return [n for n in numbers if any(n in s for s in spans)]

    return level


def me_ids(ctx: Ctx, p: Params, dim: int | None) -> list[int]:
    ids, named = p.id_set("me_id"), p.matcher("me")
    return [i for i, m in ctx.mes.items()
            if (dim is None or m.dim == dim) and (ids is None or i in ids) and named(m.name)]


@lru_cache(maxsize=8)
def files_by_dataset(world: World) -> dict[int, list[DqmFile]]:
    out: dict[int, list[DqmFile]] = {}
    for f in sorted(world.files, key=lambda f: f.file_id):
        out.setdefault(f.dataset_id, []).append(f)
    return out


# --------------------------------------------------------------------------- resources


def project(row: dict, fields: frozenset[str] | None) -> dict:
    """DIALS FieldsMixin: keep the named fields in serializer order; unknown names ignored."""
    return row if fields is None else {k: v for k, v in row.items() if k in fields}


class Resource:
    """One DIALS model: its filters, key space and row serializer."""

    model = ""
    declared: tuple[str, ...] = ()
    key_len = 1

    def select(self, ctx: Ctx, p: Params) -> Selection:
        raise NotImplementedError

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        raise NotImplementedError

    def row_bytes(self, ctx: Ctx, key: Key) -> bytes:
        return orjson.dumps(self.row(ctx, key))

    def check_page(self, ctx: Ctx, keys: list[Key]) -> None:
        """Hook to fail a page (planted permanent failures)."""


class DatasetIndex(Resource):
    model = "DatasetIndex"
    declared = (*PAGING, *DATASET_PARAMS)

    def select(self, ctx: Ctx, p: Params) -> Selection:
        return Selection((dataset_level(ctx, p),))

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        d = ctx.datasets[key[0]]
        registered = [f.registered_at for f in files_by_dataset(ctx.world).get(d.dataset_id, [])
                      if f.registered_at <= ctx.now]
        return {
            "dataset_id": d.dataset_id, "dataset": d.name, "era": d.era,
            "data_tier": d.name.rsplit("/", 1)[1], "primary_ds_name": d.primary,
            "processed_ds_name": d.processed, "processing_version": d.processing_version,
            "last_modification_date": iso(max([d.created_at, *registered])),
        }


class FileIndex(Resource):
    model = "FileIndex"
    declared = (*PAGING, "dataset_id", *LFN_PARAMS, "status", "min_size", *DATASET_PARAMS)
    key_len = 2

    def select(self, ctx: Ctx, p: Params) -> Selection:
        status, min_size, named = p.text("status"), p.number("min_size"), p.matcher(
            "logical_file_name")
        by_dataset = files_by_dataset(ctx.world)

        def files(prefix: Key) -> list[int]:
            out = []
            for f in by_dataset.get(prefix[0], []):
                seen = f.dials_status(ctx.now)
                if (seen is not None and (status is None or seen == status)
                        and (min_size is None or f.size >= min_size) and named(f.lfn)):
                    out.append(f.file_id)
            return out

        return Selection((dataset_level(ctx, p), files))

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        f = ctx.world.file_by_id[key[1]]
        return {
            "dataset_id": f.dataset_id, "dataset": ctx.datasets[f.dataset_id].name,
            "file_id": f.file_id, "file_size": f.size, "creation_date": iso(f.registered_at),
            "last_modification_date": iso(f.registered_at), "logical_file_name": f.lfn,
            "status": f.dials_status(ctx.now),
            "err_trace": f.err_trace if f.dials_status(ctx.now) == f.final_status else None,
        }


class Runs(Resource):
    model = "Run"
    declared = (*PAGING, "dataset_id", "dataset_id__in", *RUN_PARAMS, *DATASET_PARAMS)
    key_len = 2

    def select(self, ctx: Ctx, p: Params) -> Selection:
        return Selection((dataset_level(ctx, p), run_level(ctx, p, 0)))

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        dataset_id, run = key
        in_dials = len(ctx.dials_ls(dataset_id, run))
        in_dbs = len(ctx.world.dbs_ls(dataset_id, run, ctx.now))
        return {
            "dataset_id": dataset_id, "dataset": ctx.datasets[dataset_id].name,
            "run_number": run, "ls_count": in_dials,
            # Not published anywhere (dials_api.md §8.2): share of the DBS LS DIALS holds.
            "ls_completeness": in_dials / in_dbs if in_dbs else None,
        }


class Lumisections(Resource):
    model = "Lumisection"
    declared = (*PAGING, "dataset_id", *RUN_PARAMS, *LS_PARAMS, *DATASET_PARAMS)
    key_len = 3

    def select(self, ctx: Ctx, p: Params) -> Selection:
        return Selection((dataset_level(ctx, p), run_level(ctx, p, 0), ls_level(ctx, p, 0)))

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        dataset_id, run, ls = key
        return {
            "dataset_id": dataset_id, "dataset": ctx.datasets[dataset_id].name,
            "run_number": run, "ls_number": ls, "th1_count": ctx.me_count(1),
            "th2_count": ctx.me_count(2),
        }


class Histograms(Resource):
    """th1/th2: rows are the hot path, so their JSON is built once and cached as bytes."""

    declared = (*PAGING, "dataset_id", "file_id", *RUN_PARAMS, *LS_PARAMS, "me_id",
                "entries__gte", *DATASET_PARAMS, *LFN_PARAMS, *ME_PARAMS)
    key_len = 4

    def __init__(self, dim: int, cache: BytesCache) -> None:
        self.dim = dim
        self.model = f"TH{dim}"
        self.cache = cache

    def select(self, ctx: Ctx, p: Params) -> Selection:
        mes = me_ids(ctx, p, self.dim)
        levels = (dataset_level(ctx, p), run_level(ctx, p, 0),
                  ls_level(ctx, p, 0, file_matcher(p)), lambda prefix: mes)
        least = p.int_range("entries")[0]
        if least == -BIG:
            return Selection(levels)
        return Selection(levels, lambda k: entries_for(
            ctx.seed, k[0], k[1], k[2], ctx.mes[k[3]]) >= least)

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        dataset_id, run, ls, me_id = key
        me = ctx.mes[me_id]
        row: dict[str, Any] = {
            "dataset_id": dataset_id, "dataset": ctx.datasets[dataset_id].name, "me": me.name,
            "file_id": ctx.world.file_for_ls(dataset_id, run, ls).file_id, "run_number": run,
            "ls_number": ls, "me_id": me_id, "x_min": float(me.x_min),
            "x_max": float(me.x_max), "x_bin": me.x_bin,
        }
        if me.dim == 2:
            row.update(y_min=float(me.y_min), y_max=float(me.y_max), y_bin=me.y_bin)
        row["entries"] = entries_for(ctx.seed, dataset_id, run, ls, me)
        if fields is None or "data" in fields:  # the expensive part
            row["data"] = histogram(ctx.seed, dataset_id, run, ls, me)
        return row

    def row_bytes(self, ctx: Ctx, key: Key) -> bytes:
        cache_key = (ctx.seed, ctx.workspace, *key)
        body = self.cache.get(cache_key)
        if body is None:
            body = orjson.dumps(self.row(ctx, key), option=NUMPY)
            self.cache.put(cache_key, body)
        return body

    def check_page(self, ctx: Ctx, keys: list[Key]) -> None:
        failing = ctx.state.failing_me
        if not failing:
            return
        names = {ctx.mes[k[3]].name for k in keys}
        try:
            hit = any(re.search(failing, name) for name in names)
        except re.error:
            hit = False
        if hit:
            raise ApiError(server_error_html())


def _model_me(ctx: Ctx, m: MlModel) -> MonitorElement | None:
    return ctx.me_named(m.target_me) if m.workspace == ctx.workspace else None


class MlModels(Resource):
    """Superset row: the OpenAPI fields (model_id, filename, ...) and cmsdials 2.4.1's."""

    model = "MLModelsIndex"
    declared = (*PAGING, "model_id", "model_id__in", "filename", "filename__regex",
                "target_me", "target_me__regex", "active", "id", "id__in", "name",
                "name__regex", "ready", "type", "input_signature_contains_me",
                "input_signature_contains_me__regex", "tag_name", "tag_value")

    def select(self, ctx: Ctx, p: Params) -> Selection:
        checks = [
            lambda r: _in(r["model_id"], p.id_set("model_id")),
            lambda r: _in(r["id"], p.id_set("id")),
            lambda r: p.matcher("filename")(r["filename"]),
            lambda r: p.matcher("name")(r["name"]),
            lambda r: p.matcher("target_me")(r["target_me"]),
            lambda r: p.matcher("input_signature_contains_me")(r["target_me"]),
            lambda r: p.flag("active") in (None, r["active"]),
            lambda r: p.flag("ready") in (None, r["ready"]),
            lambda r: p.text("type") in (None, r["type"]),
            lambda r: p.text("tag_name") in (None, *(t["name"] for t in r["tags"])),
            lambda r: p.text("tag_value") in (None, *(t["value"] for t in r["tags"])),
        ]
        rows = [self.row(ctx, (m.model_id,)) for m in ctx.world.ml_models
                if m.workspace == ctx.workspace]
        chosen = sorted(r["model_id"] for r in rows if all(c(r) for c in checks))
        return Selection((lambda prefix: chosen,))

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        m = next(m for m in ctx.world.ml_models if m.model_id == key[0])
        me = _model_me(ctx, m)
        created = iso(ctx.world.profile.start - timedelta(days=30 - m.model_id))
        return {
            "model_id": m.model_id, "filename": m.filename, "target_me": m.target_me,
            "active": m.active, "id": m.model_id, "name": m.filename.rsplit(".", 1)[0],
            "revision": 1, "ready": True, "type": "onnx", "anomaly_threshold": 0.1,
            "builtin_threshold": False, "description": f"Anomaly score of {m.target_me}",
            "flagging_key": None, "metric_key": "mse",
            "input_signature": [{"name": "input", "me": m.target_me,
                                 "dim": me.dim if me else None}],
            "output_signature": [{"name": "mse", "dtype": "float32"}],
            "tags": [{"name": "workspace", "value": m.workspace}],
            "isvc_service_name": f"model-{m.model_id}", "isvc_yaml": None,
            "created_by": "dialsflow-emulator", "modified_by": "dialsflow-emulator",
            "created_at": created, "modified_at": created,
        }


def _in(value: int, allowed: frozenset | None) -> bool:
    return allowed is None or value in allowed


class MlBadLumisections(Resource):
    """LS flagged by a model: empty LS of its ME, plus a deterministic ~3 % of the others."""

    model = "MLBadLumisection"
    declared = (*PAGING, "model_id", "model_id__in", "dataset_id", "dataset_id__in",
                *DATASET_PARAMS, "me_id", *ME_PARAMS, "run_number", "run_number__in",
                "ls_number")
    key_len = 5

    def select(self, ctx: Ctx, p: Params) -> Selection:
        mes = set(me_ids(ctx, p, None))
        allowed = p.id_set("model_id")
        models = {m.model_id: me.me_id for m in ctx.world.ml_models
                  if (me := _model_me(ctx, m)) is not None and me.me_id in mes
                  and _in(m.model_id, allowed)}
        chosen = sorted(models)
        ls_numbers = ls_level(ctx, p, 1)

        def bad_ls(prefix: Key) -> list[int]:
            model_id, dataset_id, run = prefix
            me = ctx.mes[models[model_id]]
            return [ls for ls in ls_numbers(prefix)
                    if self.flagged(ctx, model_id, dataset_id, run, ls, me)]

        return Selection((lambda prefix: chosen, dataset_level(ctx, p), run_level(ctx, p, 1),
                          bad_ls, lambda prefix: [models[prefix[0]]]))

    @staticmethod
    def flagged(ctx: Ctx, model_id: int, dataset_id: int, run: int, ls: int,
                me: MonitorElement) -> bool:
        return (entries_for(ctx.seed, dataset_id, run, ls, me) == 0
                or stable_int("ml-bad", ctx.seed, model_id, dataset_id, run, ls) % 33 == 0)

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        model_id, dataset_id, run, ls, me_id = key
        score = 0.1 + stable_int("ml-score", ctx.seed, *key) % 10_000 / 4_000
        return {
            "model_id": model_id, "dataset_id": dataset_id,
            "file_id": ctx.world.file_for_ls(dataset_id, run, ls).file_id,
            "run_number": run, "ls_number": ls, "me_id": me_id, "mse": score,
            "metric_value": score,
        }


# --------------------------------------------------------------------------- handlers

Handler = Callable[[Request, Ctx], bytes | Response]


def parse_fields(raw: str | None) -> frozenset[str] | None:
    if not raw:
        return None
    return frozenset(name.strip() for name in raw.split(","))


def envelope(next_url: str | None, previous_url: str | None, rows: list[bytes]) -> bytes:
    """DIALS' paginated body: next, previous, results; no count."""
    return b"".join((b'{"next":', orjson.dumps(next_url), b',"previous":',
                     orjson.dumps(previous_url), b',"results":[', b",".join(rows), b"]}"))


def list_handler(res: Resource) -> Handler:
    def handle(request: Request, ctx: Ctx) -> bytes:
        query = request.query_params
        p = Params(query, res.declared)
        cursor = decode_cursor(query.get("next_token"), res.key_len)
        selection = res.select(ctx, p)
        page = paginate(selection, cursor, page_size(query.get("page_size")))
        res.check_page(ctx, page.keys)
        fields = parse_fields(query.get("fields"))
        if fields is None:
            rows = [res.row_bytes(ctx, k) for k in page.keys]
        else:
            rows = [orjson.dumps(project(res.row(ctx, k, fields), fields), option=NUMPY)
                    for k in page.keys]
        return envelope(page_url(request, page.next), page_url(request, page.previous), rows)

    return handle


def count_handler(res: Resource) -> Handler:
    def handle(request: Request, ctx: Ctx) -> bytes:
        selection = res.select(ctx, Params(request.query_params, res.declared))
        return orjson.dumps({"count": sum(1 for _ in selection.walk())})

    return handle


def key_handler(res: Resource) -> Handler:
    """Composite-key GET: no `fields` (the serializer gets no request context)."""

    def handle(request: Request, ctx: Ctx) -> bytes:
        key = tuple(request.path_params.values())
        if not res.select(ctx, NO_PARAMS).contains(key):
            raise _no_match(res.model)
        return res.row_bytes(ctx, key)

    return handle


def _pk(raw: str) -> int | None:
    """A router `{pk}` segment as an integer id; anything else matches no row."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 30 else None


def retrieve_handler(res: Resource) -> Handler:
    """Router-style retrieve (`{pk}/`): any string reaches the view; `fields` applies."""

    def handle(request: Request, ctx: Ctx) -> bytes:
        pk = _pk(next(iter(request.path_params.values())))
        key = (-1 if pk is None else pk,)
        if not res.select(ctx, NO_PARAMS).contains(key):
            raise _no_match(res.model)
        fields = parse_fields(request.query_params.get("fields"))
        return orjson.dumps(project(res.row(ctx, key, fields), fields))

    return handle


def _me_row(me: MonitorElement, stored: int) -> dict:
    return {"me_id": me.me_id, "me": me.name, "count": stored, "dim": me.dim}


def stored_per_me(ctx: Ctx) -> int:
    """Histograms DIALS holds per ME of the workspace: every ME is in every ingested LS."""
    return sum(len(ctx.dials_ls(d, run)) for d in ctx.datasets for run in ctx.runs_in_dials(d))


MES_PARAMS = ("fields", *ME_PARAMS, "dim")


def mes_list(request: Request, ctx: Ctx) -> bytes:
    """Bare list, not paginated (pagination_class = None), ordered by me_id."""
    p = Params(request.query_params, MES_PARAMS)
    dims = p.id_set("dim")
    chosen = [ctx.mes[i] for i in me_ids(ctx, p, None) if _in(ctx.mes[i].dim, dims)]
    stored = stored_per_me(ctx) if chosen else 0
    fields = parse_fields(request.query_params.get("fields"))
    return orjson.dumps([project(_me_row(m, stored), fields) for m in chosen])


def mes_retrieve(request: Request, ctx: Ctx) -> bytes:
    pk = _pk(request.path_params["me_id"])
    me = None if pk is None else ctx.mes.get(pk)
    if me is None:
        raise _no_match("MEs")
    fields = parse_fields(request.query_params.get("fields"))
    return orjson.dumps(project(_me_row(me, stored_per_me(ctx)), fields))


def mes_of_run(request: Request, ctx: Ctx) -> bytes:
    """MEs in the lowest LS of a run (frontend route). No LS: [] (real DIALS: HTML 500)."""
    dataset_id, run = request.path_params["dataset_id"], request.path_params["run_number"]
    if dataset_id not in ctx.datasets or not ctx.dials_ls(dataset_id, run):
        return b"[]"
    return orjson.dumps([{"me_id": m.me_id, "me": m.name, "dim": m.dim}
                         for m in ctx.mes.values()])


# ---- ml-bad-lumisection JSON exports


def _ml_params(request: Request, body: bytes) -> Params:
    """cert-json / golden-json take lists by query (OpenAPI) or by JSON body (cmsdials POST)."""
    names = ("model_id__in", "dataset_id__in", "run_number__in")
    if request.method != "POST":
        return Params(request.query_params, names)
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise _detail(400, f"JSON parse error - {exc}") from exc
    if not isinstance(data, dict):
        raise _detail(400, "Invalid data. Expected a dictionary.")
    query = {k: ",".join(map(str, v)) if isinstance(v, list) else str(v)
             for k, v in data.items() if k in names and v is not None}
    return Params(query, names)


def cert_json(res: MlBadLumisections) -> Callable[[Request, Ctx, bytes], bytes]:
    def handle(request: Request, ctx: Ctx, body: bytes) -> bytes:
        out: dict[str, dict[str, list[dict]]] = {}
        models = {m.model_id: m for m in ctx.world.ml_models}
        keys = res.select(ctx, _ml_params(request, body)).walk()
        for model_id, _dataset_id, run, ls, me_id in keys:
            out.setdefault(str(run), {}).setdefault(str(ls), []).append({
                "model_id": model_id, "me_id": me_id, "filename": models[model_id].filename,
                "me": ctx.mes[me_id].name})
        return orjson.dumps(dict(sorted(out.items(), key=lambda kv: int(kv[0]))))

    return handle


def golden_json(res: MlBadLumisections) -> Callable[[Request, Ctx, bytes], bytes]:
    """LS ranges DIALS holds that no selected model flagged, per run."""

    def handle(request: Request, ctx: Ctx, body: bytes) -> bytes:
        p = _ml_params(request, body)
        flagged: dict[int, set[int]] = {}
        for _model, _dataset, run, ls, _me in res.select(ctx, p).walk():
            flagged.setdefault(run, set()).add(ls)
        datasets, runs = dataset_level(ctx, p)(()), run_level(ctx, p, 0)
        good: dict[int, set[int]] = {}
        for dataset_id in datasets:
            for run in runs((dataset_id,)):
                good.setdefault(run, set()).update(ctx.dials_ls(dataset_id, run))
        return orjson.dumps({str(run): ranges(sorted(good[run] - flagged.get(run, set())))
                             for run in sorted(good)})

    return handle


# ---- third parties and auth helpers


def _required(query: Mapping[str, str], *names: str) -> list[str]:
    missing = {n: ["This field is required."] for n in names if not query.get(n)}
    if missing:
        raise ApiError(json_response(missing, 400))
    return [query[n] for n in names]


def caf(request: Request, ctx: Ctx) -> bytes:
    """The latest CAF file of a kind, chosen by time like DIALS' CAF client."""
    class_name, kind = _required(request.query_params, "class_name", "kind")
    if kind not in WORLD_KINDS:
        raise ApiError(json_response(
            {"kind": [f'"{kind}" is not a valid choice.']}, 400))
    cert = ctx.world.latest_cert(kind, ctx.now)
    if cert is None or not cert.path.startswith(class_name + "/"):
        raise _detail(404, "Not found.")
    return orjson.dumps({
        "name": cert.path.rsplit("/", 1)[1],
        "url": f"{base_url(request)}{CAF_BASE}{cert.path}",
        "last_modified": cert.published_at.strftime("%Y-%m-%d %H:%M"),
        "size": caf_area.apache_size(len(caf_area.cert_bytes(cert))).strip(),
        "content": cert.content,
    })


def editable_datasets(request: Request, ctx: Ctx) -> bytes:
    """Run Registry runs per global state. The world certifies runs 4 days after they end
    (good ones land in the golden JSON): COMPLETED = ended that long before the latest
    golden JSON was published, OPEN = the other ended collision runs, other states = none."""
    class_name, _dataset, global_state = _required(
        request.query_params, "class_name", "dataset_name", "global_state")
    world = ctx.world
    golden = world.latest_cert("golden", ctx.now)
    cutoff = golden.published_at - timedelta(days=4) if golden else None
    ended = [r for r in world.runs if r.stable_beam and r.end <= ctx.now]
    done = {r.number for r in ended if cutoff is not None and r.end <= cutoff}
    state = global_state.upper() if class_name == world.cert_class else ""
    runs = {"OPEN": [r.number for r in ended if r.number not in done],
            "COMPLETED": sorted(done)}.get(state, [])
    return orjson.dumps(runs)


UNITS = {"/ub": 1.0, "/nb": 1e-3, "/pb": 1e-6, "/fb": 1e-9}


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError(json_response({name: ["A valid integer is required."]}, 400)) from exc


def _lumi_runs(ctx: Ctx, query: Mapping[str, str]) -> list[Run]:
    """Runs brilcalc would report: ended by now, selected by run, fill or begin/end."""
    run, fill = _int_param(query, "runnumber"), _int_param(query, "fillnum")
    begin, end = query.get("begin"), query.get("end")
    stable_only = "STABLE" in (query.get("beamstatus") or "").upper()
    out = []
    for r in ctx.world.runs:
        if r.end > ctx.now or (run is not None and r.number != run):
            continue
        if (fill is not None and r.fill != fill) or (stable_only and not r.stable_beam):
            continue
        if not (_after(r, begin, lower=True) and _after(r, end, lower=False)):
            continue
        out.append(r)
    return out


def _after(run: Run, bound: str | None, *, lower: bool) -> bool:
    """brilcalc --begin/--end: a run number, a fill number or 'mm/dd/yy hh:mm:ss'."""
    if not bound:
        return True
    bound = bound.strip()
    if bound.isascii() and bound.isdigit():
        number = int(bound[:12])
        value = run.number if number >= 100_000 else run.fill
        return value >= number if lower else value <= number
    try:
        moment = utc(datetime.strptime(bound, "%m/%d/%y %H:%M:%S").isoformat())
    except ValueError as exc:
        raise ApiError(json_response({"begin" if lower else "end": [
            "Use a run or fill number, or mm/dd/yy hh:mm:ss."]}, 400)) from exc
    return run.start >= moment if lower else run.start <= moment


def brilcalc_lumi(request: Request, ctx: Ctx) -> bytes:
    """brilcalc lumi as JSON: per run (or per LS with byls) delivered/recorded, and totals."""
    query = request.query_params
    unit = query.get("unit") or "/ub"
    scale = UNITS.get(unit)
    if scale is None:
        raise ApiError(json_response({"unit": [f"Unknown unit {unit!r}."]}, 400))
    byls = (query.get("byls") or "").lower() in ("true", "1")
    world = ctx.world
    rows, totals = [], [0.0, 0.0]
    for r in _lumi_runs(ctx, query):
        per_ls = [world.lumi_per_ls(r.number, ls) * scale for ls in range(1, r.n_ls + 1)]
        recorded = [v * 0.97 for v in per_ls]
        totals[0] += sum(per_ls)
        totals[1] += sum(recorded)
        if byls:
            rows.extend({
                "run": r.number, "fill": r.fill, "ls": ls, "time": iso(r.ls_start(ls)),
                "beamstatus": "STABLE BEAMS" if r.stable_beam else "ADJUST", "E": 6800,
                "delivered": per_ls[ls - 1], "recorded": recorded[ls - 1], "avgpu": r.pileup,
                "source": "HFOC",
            } for ls in range(1, r.n_ls + 1))
        else:
            rows.append({"run": r.number, "fill": r.fill, "time": iso(r.start),
                         "nls": r.n_ls, "ncms": r.n_ls, "delivered": sum(per_ls),
                         "recorded": sum(recorded)})
    runs = {row["run"] for row in rows}
    return orjson.dumps({
        "unit": unit, "detailed": rows,
        "summary": {"nfill": len({row["fill"] for row in rows}), "nrun": len(runs),
                    "totdelivered": totals[0], "totrecorded": totals[1]},
    })


def oms_proxy(request: Request, ctx: Ctx) -> Response:
    """Forward to the OMS twin as DIALS forwards to OMS (cmsdials OMSProxyClient.query)."""
    (resource,) = _required(request.query_params, "endpoint")
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "endpoint"]
    status, body = oms.query_response(ctx.state, resource, params,
                                  f"{base_url(request)}/agg/api/v1", ctx.now)
    return json_response(body, status)


def new_device(state: EmulatorState) -> Handler:
    """DIALS' device-flow start (public in the OpenAPI file): a code the Keycloak twin redeems."""

    def handle(request: Request, ctx: Ctx) -> bytes:
        code = secrets.token_urlsafe(32)
        user_code = secrets.token_hex(4).upper()
        state.device_codes[code] = DIALS_PUBLIC_CLIENT
        uri = f"{base_url(request)}/auth/realms/cern/device?user_code={user_code}"
        return orjson.dumps({"device_code": code, "verification_uri_complete": uri,
                             "expires_in": 600})

    return handle


def workspaces(request: Request, ctx: Ctx) -> bytes:
    return orjson.dumps({"workspaces": list(WORKSPACE_NAMES)})


def default_workspace(request: Request, ctx: Ctx) -> bytes:
    return orjson.dumps({"workspace": DEFAULT_WORKSPACE})


# --------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class Options:
    """How the endpoint wrapper treats a route."""

    public: bool = False  # no authentication (auth/new-device/)
    workspace: bool = True  # reads the Workspace header (data routes)
    cached: bool = True  # 30 s body cache per URL
    methods: tuple[str, ...] = ("GET", "HEAD")
    with_body: bool = False  # handler(request, ctx, body): POST JSON exports


@dataclass
class Endpoints:
    """Wraps handlers with DIALS' request pipeline: auth, method, clock, workspace, cache."""

    state: EmulatorState
    pages: BytesCache = field(default_factory=lambda: BytesCache(PAGE_CACHE_BYTES,
                                                                 PAGE_CACHE_TTL_S))

    def wrap(self, handler: Callable, options: Options) -> Callable:
        state = self.state

        async def endpoint(request: Request) -> Response:
            if not options.public and (denied := authenticate(state, request)) is not None:
                return denied
            if request.method not in options.methods:
                return json_response(
                    {"detail": f'Method "{request.method}" not allowed.'}, 405)
            try:
                now = state.now_for(request.headers)
                workspace = request_workspace(request) if options.workspace else \
                    DEFAULT_WORKSPACE
            except ValueError:
                return json_response({"detail": "X-Emulator-Now is not ISO 8601"}, 400)
            except ApiError as exc:
                return exc.response
            cache_key = (workspace, str(request.url), now, state.failing_me)
            if options.cached and (body := self.pages.get(cache_key)) is not None:
                return raw_json(body)
            ctx = make_ctx(state, workspace, now)
            try:
                if options.with_body:
                    result = handler(request, ctx, await request.body())
                else:
                    result = handler(request, ctx)
            except ApiError as exc:
                return exc.response
            if isinstance(result, Response):
                return result
            if options.cached:
                self.pages.put(cache_key, result)
            return raw_json(result)

        return endpoint


def _resolves(routes: Sequence[BaseRoute], path: str) -> bool:
    scope = {"type": "http", "path": path, "method": "GET"}
    return any(r.matches(scope)[0] is not Match.NONE for r in routes)


def fallback(routes: Sequence[BaseRoute]) -> Callable:
    """Django: APPEND_SLASH 301 when the slashed path exists, else the HTML 404 page."""

    async def missing(request: Request) -> Response:
        path = request.url.path
        if not path.endswith("/") and _resolves(routes, path + "/"):
            query = request.url.query
            target = quote(path, safe=URI_SAFE) + "/" + (f"?{query}" if query else "")
            return Response(status_code=301, headers={"location": target})
        return not_found_html()

    return missing


URI_SAFE = "/:@&+$,-_.!~*'()"  # Django escape_uri_path
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def routes(state: EmulatorState) -> list[BaseRoute]:
    rows = BytesCache(ROW_CACHE_BYTES)
    th1, th2 = Histograms(1, rows), Histograms(2, rows)
    datasets, files, runs, lumis = DatasetIndex(), FileIndex(), Runs(), Lumisections()
    models, bad = MlModels(), MlBadLumisections()
    ep = Endpoints(state)
    anywhere = Options(workspace=False)
    exports = Options(methods=("GET", "HEAD", "POST"), with_body=True, cached=False)
    n = "{%s:dials_int}"
    table: list[tuple[str, Callable, Options]] = [
        ("dataset-index/", list_handler(datasets), Options()),
        ("dataset-index/{dataset_id}/", retrieve_handler(datasets), Options()),
        ("file-index/", list_handler(files), Options()),
        ("file-index/count/", count_handler(files), Options()),
        (f"file-index/{n % 'dataset_id'}/{n % 'file_id'}/", key_handler(files), Options()),
        ("run/", list_handler(runs), Options()),
        ("run/count/", count_handler(runs), Options()),
        (f"run/{n % 'dataset_id'}/{n % 'run_number'}/", key_handler(runs), Options()),
        ("lumisection/", list_handler(lumis), Options()),
        ("lumisection/count/", count_handler(lumis), Options()),
        (f"lumisection/{n % 'dataset_id'}/{n % 'run_number'}/{n % 'ls_number'}/",
         key_handler(lumis), Options()),
        *[(f"{res.model.lower()}/", list_handler(res), Options()) for res in (th1, th2)],
        *[(f"{res.model.lower()}/{n % 'dataset_id'}/{n % 'run_number'}/{n % 'ls_number'}/"
           f"{n % 'me_id'}/", key_handler(res), Options()) for res in (th1, th2)],
        ("mes/", mes_list, Options()),
        ("mes/{me_id}/", mes_retrieve, Options()),
        (f"mes/{n % 'dataset_id'}/{n % 'run_number'}/", mes_of_run, Options()),
        ("ml-models-index/", list_handler(models), Options()),
        ("ml-models-index/{model_id}/", retrieve_handler(models), Options()),
        ("ml-bad-lumisection/", list_handler(bad), Options()),
        ("ml-bad-lumisection/cert-json/", cert_json(bad), exports),
        ("ml-bad-lumisection/golden-json/", golden_json(bad), exports),
        (f"ml-bad-lumisection/{n % 'model_id'}/{n % 'dataset_id'}/{n % 'run_number'}/"
         f"{n % 'ls_number'}/{n % 'me_id'}/", key_handler(bad), Options()),
        ("workspaces/", workspaces, anywhere),
        ("workspaces/my-default/", default_workspace, anywhere),
        ("auth/workspaces/", workspaces, anywhere),
        ("auth/user-default-workspace/", default_workspace, anywhere),
        ("auth/new-device/", new_device(state), Options(public=True, workspace=False,
                                                        cached=False)),
        ("oms-proxy/", oms_proxy, Options(workspace=False, cached=False)),
        ("caf/", caf, anywhere),
        ("runregistry/editable-datasets/", editable_datasets, anywhere),
        ("brilws/brilcalc-lumi/", brilcalc_lumi, anywhere),
    ]
    served: list[BaseRoute] = [Route(f"{API}/{path}", ep.wrap(handler, options),
                                     methods=ALL_METHODS)
                               for path, handler, options in table]
    missing = fallback(served)
    return [*served, Route(API, missing, methods=ALL_METHODS),
            Route(API + "/{rest:path}", missing, methods=ALL_METHODS)]
