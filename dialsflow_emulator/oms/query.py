"""OMS query parameters (docs/reference/oms.md §2, §3): filters, sort, fields, paging; and selecting
the matching rows with `run_number` / `fill_number` filters applied before rows are built."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from ..world.model import World
from .attributes import BOOL, DATETIME, FRACTION, INT, LIST, STRING, Attr, Row
from .resources import Keep, Resource

DEFAULT_LIMIT = 100  # CMSSW OMSAccess.h: the server's page size when none is given
MAX_LIMIT = 100_000  # pixelae: "hard limit in OMS API"
OPERATORS = ("EQ", "NEQ", "LT", "GT", "LE", "GE", "LIKE", "CT")


class QueryError(Exception):
    """A request OMS refuses; `status` and a JSON:API `errors` body."""

    def __init__(self, status: int, detail: str, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        title = {400: "Bad Request", 404: "Not Found"}.get(self.status, "Error")
        error: dict[str, Any] = {"status": str(self.status), "title": title,
                                 "detail": self.detail}
        if self.parameter:
            error["source"] = {"parameter": self.parameter}
        return {"errors": [error]}


_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?"
    r"\s*(Z|[+\- ]\d{2}(?::?\d{2})?)?", re.IGNORECASE)


def parse_datetime(text: str) -> datetime:
    """Lenient ISO 8601 (§3): optional Z/seconds/fraction, space for T, naive = UTC, and an
    offset whose '+' arrived as a space (omsapi does not URL-encode filter values)."""
    m = _DATETIME.fullmatch(text.strip())
    if m is None:
        raise ValueError(text)
    day, clock, offset = m.groups()
    offset = "+00:00" if offset is None or offset.upper() == "Z" else offset
    sign, digits = ("+" if offset[0] == " " else offset[0]), offset[1:].replace(":", "")
    value = datetime.fromisoformat(f"{day}T{clock or '00:00'}{sign}{digits[:2]}:"
                                   f"{digits[2:] or '00'}")
    return value.astimezone(UTC)


def _parse_value(attr: Attr, text: str) -> Any:
    """A filter value as the attribute's type; 'null' (any case) is SQL NULL."""
    if text.strip().lower() == "null":
        return None
    try:
        if attr.api_type == INT:
            return int(text) if re.fullmatch(r"\s*[+-]?\d+\s*", text) else float(text)
        if attr.api_type == FRACTION:
            return float(text)
        if attr.api_type == DATETIME:
            return parse_datetime(text)
    except (ValueError, OverflowError) as exc:
        raise QueryError(400, f"Invalid value '{text[:80]}' for attribute '{attr.name}' "
                         f"of type {attr.api_type}") from exc
    if attr.api_type == BOOL:
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0"):
            raise QueryError(400, f"Invalid boolean '{text[:80]}' for attribute '{attr.name}'")
        return lowered in ("true", "1")
    return text


_LIKE_WILDCARDS = {"%": ".*", "_": "."}


@lru_cache(maxsize=256)
def _like(pattern: str) -> re.Pattern[str]:
    """SQL LIKE: % matches any run of characters, _ exactly one."""
    return re.compile("".join(_LIKE_WILDCARDS.get(c) or re.escape(c) for c in pattern),
                      re.DOTALL)


def _contains(value: Any, wanted: Any) -> bool:
    return isinstance(value, str) and str(wanted) in value


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": operator.eq, "NEQ": operator.ne, "LT": operator.lt, "GT": operator.gt,
    "LE": operator.le, "GE": operator.ge, "CT": _contains,
}


@dataclass(frozen=True)
class Filter:
    """`filter[attr][OP]=value` on column `index`, with SQL NULL semantics."""

    index: int
    attr: Attr
    op: str
    value: Any

    def test(self, row: Row) -> bool:
        v = row[self.index]
        if self.value is None:
            return (v is None) if self.op == "EQ" else (v is not None) if self.op == "NEQ" \
                else False
        if v is None:
            return False
        if isinstance(v, list):
            return self.value not in v if self.op == "NEQ" else \
                any(self._compare(e) for e in v)
        return self._compare(v)

    def _compare(self, v: Any) -> bool:
        if self.op == "LIKE":
            return _like(self.value).fullmatch(v) is not None
        try:
            return _COMPARE[self.op](v, self.value)
        except TypeError:  # e.g. a number compared with a date: no match, like SQL
            return False


@dataclass
class Query:
    """A parsed OMS query: filters, sort, projection, page, includes."""

    filters: list[Filter] = field(default_factory=list)
    sort: list[tuple[int, bool]] = field(default_factory=list)  # (column, descending)
    fields: list[int] | None = None
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    include: set[str] = field(default_factory=set)
    granularity: str | None = None  # `group[granularity]`, for the rate resources


_FILTER_KEY = re.compile(r"filter\[([^\]]*)\](?:\[([^\]]*)\])?")


def _attr_index(res: Resource, name: str, parameter: str) -> int:
    name = name.strip()
    if name not in res.index:
        raise QueryError(400, f"Attribute '{name}' does not exist for resource '{res.name}'",
                         parameter)
    return res.index[name]


def _filter(res: Resource, key: str, match: re.Match[str], text: str) -> Filter:
    index = _attr_index(res, match[1], key)
    attr = res.attrs[index]
    op = (match[2] or "EQ").strip().upper()
    if op not in OPERATORS:
        raise QueryError(400, f"Unknown filter operator '{match[2]}'", key)
    if op in ("LIKE", "CT") and attr.api_type not in (STRING, LIST):
        raise QueryError(400, f"Operator {op} needs a string attribute, not '{attr.name}'", key)
    return Filter(index, attr, op, _parse_value(attr, text))


def _page_number(key: str, text: str, lowest: int) -> int:
    if not re.fullmatch(r"\s*\d{1,12}\s*", text) or int(text) < lowest:
        raise QueryError(400, f"'{key}' must be an integer >= {lowest}", key)
    return int(text)


def parse_query(res: Resource, params: Sequence[tuple[str, str]]) -> Query:
    """Raw (key, value) pairs, brackets decoded, into a Query; unknown keys are ignored."""
    q = Query()
    for key, text in params:
        if m := _FILTER_KEY.fullmatch(key):
            q.filters.append(_filter(res, key, m, text))
        elif key == "sort":
            for name in filter(None, (s.strip() for s in text.split(","))):
                desc = name.startswith("-")
                q.sort.append((_attr_index(res, name.lstrip("-+"), key), desc))
        elif key == "fields" or key == f"fields[{res.name}]":
            chosen = {_attr_index(res, n, key) for n in text.split(",") if n.strip()}
            q.fields = sorted(chosen)
        elif key == "page[offset]":
            q.offset = _page_number(key, text, 0)
        elif key == "page[limit]":
            q.limit = min(_page_number(key, text, 1), MAX_LIMIT)
        elif key == "include":
            q.include |= {part.strip() for part in text.split(",")}
        elif key == "group[granularity]" and res.granularities:
            q.granularity = text.strip()
            if q.granularity not in res.granularities:
                raise QueryError(400, f"Granularity '{text[:40]}' is not supported by resource "
                                 f"'{res.name}' (supported: {', '.join(res.granularities)})",
                                 key)
    return q


def _scope_keep(res: Resource, filters: list[Filter]) -> Keep:
    """Entity numbers the scope filters allow, tested before any row is built."""
    scope = [f for f in filters if f.attr.name == res.scope]
    if not scope:
        return lambda number: True
    probe = [0] * len(res.attrs)

    def keep(number: int) -> bool:
        probe[res.index[res.scope]] = number
        return all(f.test(tuple(probe)) for f in scope)

    return keep


def _sort_key(index: int) -> Callable[[Row], tuple[bool, Any]]:
    """Nulls last ascending and first descending, as Oracle orders them."""
    return lambda row: (row[index] is None, 0 if row[index] is None else row[index])


def select(res: Resource, world: World, now: datetime, q: Query) -> list[Row]:
    """Matching rows in the requested order (primary key when no sort is given)."""
    keep = _scope_keep(res, q.filters)
    rows = [row for row in res.rows(world, now, keep) if all(f.test(row) for f in q.filters)]
    for index, desc in reversed(q.sort):
        rows.sort(key=_sort_key(index), reverse=desc)
    return rows
