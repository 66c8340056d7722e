"""Key levels shared by the resources: datasets, runs, LS and MEs a request's filters allow."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from functools import lru_cache

from ..world.entities import DqmFile
from ..world.model import World
from .context import Ctx
from .cursors import Key
from .keyset import Level
from .params import Params, always


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
    if ids is None and named is always:
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
