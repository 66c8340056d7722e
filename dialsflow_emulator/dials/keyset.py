"""Keyset pagination: composite keys walked lazily in order, bisecting to the cursor.

No request materialises the rows of a whole dataset: each level lists the sorted values of
one key column under a prefix, and a page takes size+1 keys from the walk.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from .cursors import Cursor, Key

Level = Callable[[Key], Sequence[int]]


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
