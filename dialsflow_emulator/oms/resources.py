"""The queryable OMS collections: attributes, primary key, and their rows at a clock."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..world.model import World
from .attributes import FILL_ATTRS, LS_ATTRS, RUN_ATTRS, Attr, Row
from .rows import ended_fill_row, ended_run_row, fill_row, ls_started, ls_table, run_row

Keep = Callable[[int], bool]


@dataclass(frozen=True)
class Resource:
    """A queryable collection: attributes, primary key, and rows at a clock."""

    name: str
    attrs: tuple[Attr, ...]
    key: tuple[str, ...]  # primary key: default order and `id`
    scope: str  # the entity-number attribute used to pre-select entities
    rows: Callable[[World, datetime, Keep], Iterable[Row]]
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


def _lumisections(world: World, now: datetime, keep: Keep) -> Iterator[Row]:
    for run in world.runs:
        if run.start <= now and keep(run.number):
            yield from ls_table(world, run.number)[:ls_started(run, now)]


def _fills(world: World, now: datetime, keep: Keep) -> Iterator[Row]:
    for fill in world.fills:
        if fill.start <= now and keep(fill.number):
            yield ended_fill_row(world, fill.number) if fill.end <= now else \
                fill_row(world, fill, now)


RESOURCES = {r.name: r for r in (
    Resource("runs", RUN_ATTRS, ("run_number",), "run_number", _runs),
    Resource("lumisections", LS_ATTRS, ("run_number", "lumisection_number"), "run_number",
             _lumisections),
    Resource("fills", FILL_ATTRS, ("fill_number",), "fill_number", _fills),
)}
