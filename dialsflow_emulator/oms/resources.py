"""The queryable OMS collections: attributes, primary key, and their rows at a clock."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..world.model import World
from .attributes import (
    DATASETRATES_ATTRS,
    FILL_ATTRS,
    HLTPATHINFO_ATTRS,
    HLTPATHRATES_ATTRS,
    LS_ATTRS,
    RUN_ATTRS,
    Attr,
    Row,
)
from .rows import (
    datasetrate_tables,
    ended_fill_row,
    ended_run_row,
    fill_row,
    hlt_paths,
    hltrate_tables,
    ls_started,
    run_row,
    served_ls_table,
)

Keep = Callable[[int], bool]
LS_AT = [a.name for a in LS_ATTRS].index("lumisection_number")


@dataclass(frozen=True)
class Resource:
    """A queryable collection: attributes, primary key, and rows at a clock."""

    name: str
    attrs: tuple[Attr, ...]
    key: tuple[str, ...]  # primary key: default order and `id`
    scope: str  # the entity-number attribute used to pre-select entities
    rows: Callable[[World, datetime, Keep], Iterable[Row]]
    #: accepted `group[granularity]` values; empty: the parameter is ignored (§2)
    granularities: tuple[str, ...] = ()
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {a.name: i for i, a in enumerate(self.attrs)})

    def row_id(self, row: Row) -> str:
        return "_".join(str(row[self.index[k]]) for k in self.key)

    def id_filters(self, text: str) -> list[tuple[str, str]]:
        parts = text.split("_")
        if len(parts) != len(self.key):
            return [(f"filter[{self.key[0]}][EQ]", "-1")]  # matches nothing
        return [(f"filter[{k}][EQ]", v) for k, v in zip(self.key, parts, strict=True)]

    @property
    def catalogue(self) -> dict[str, Any]:
        return {a.name: a.meta() for a in self.attrs}


def _runs(world: World, now: datetime, keep: Keep) -> Iterator[Row]:
    for run in world.runs:
        if run.start <= now and keep(run.number):
            yield ended_run_row(world, run.number) if run.end <= now else \
                run_row(world, run, now)


def _started(rows: Iterable[Row], n: int, missing: frozenset[int], at: int) -> Iterator[Row]:
    """Rows of the first n LS (LS number at column `at`) that OMS has a row for."""
    return (row for row in rows if row[at] <= n and row[at] not in missing)


def _lumisections(world: World, now: datetime, keep: Keep) -> Iterator[Row]:
    for run in world.runs:
        if run.start <= now and keep(run.number):
            # served_ls_table already lacks the missing LS
            yield from _started(served_ls_table(world, run.number), ls_started(run, now),
                                frozenset(), LS_AT)


def _fills(world: World, now: datetime, keep: Keep) -> Iterator[Row]:
    for fill in world.fills:
        if fill.start <= now and keep(fill.number):
            yield ended_fill_row(world, fill.number) if fill.end <= now else \
                fill_row(world, fill, now)


def _hltpathinfo(world: World, now: datetime, keep: Keep) -> Iterator[Row]:
    for run in world.runs:
        if run.start <= now and keep(run.number):
            yield from ((run.number, path_id, name)
                        for path_id, name in hlt_paths(world, run.number))


def _per_ls(tables: Callable[[World, int], tuple[tuple[Row, ...], ...]],
            attrs: tuple[Attr, ...]) -> Callable[[World, datetime, Keep], Iterator[Row]]:
    """Rows of per-run tables (one per path or dataset) for the LS started at `now`, without
    the LS `lumisections` lacks (rates are per LS of `lumisections`)."""
    at = [a.name for a in attrs].index("first_lumisection_number")
    def rows(world: World, now: datetime, keep: Keep) -> Iterator[Row]:
        for run in world.runs:
            if run.start <= now and keep(run.number):
                n = ls_started(run, now)
                missing = world.oms_missing_ls.get(run.number, frozenset())
                for table in tables(world, run.number):
                    yield from _started(table, n, missing, at)
    return rows


RESOURCES = {r.name: r for r in (
    Resource("runs", RUN_ATTRS, ("run_number",), "run_number", _runs),
    Resource("lumisections", LS_ATTRS, ("run_number", "lumisection_number"), "run_number",
             _lumisections),
    Resource("fills", FILL_ATTRS, ("fill_number",), "fill_number", _fills),
    Resource("hltpathinfo", HLTPATHINFO_ATTRS, ("run_number", "path_id"), "run_number",
             _hltpathinfo),
    Resource("hltpathrates", HLTPATHRATES_ATTRS,
             ("run_number", "path_id", "first_lumisection_number"), "run_number",
             _per_ls(hltrate_tables, HLTPATHRATES_ATTRS), ("lumisection",)),
    Resource("datasetrates", DATASETRATES_ATTRS,
             ("run_number", "dataset_name", "first_lumisection_number"), "run_number",
             _per_ls(datasetrate_tables, DATASETRATES_ATTRS), ("lumisection",)),
)}
