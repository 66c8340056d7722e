"""Lumisection sets: per run, the LS numbers a source holds, and their compact range form.

DBS, DIALS and parquet all answer "which LS of which run"; one shape (`LumiMap`) lets them
be compared with plain set algebra, and one range form (`[[first, last], ...]`, as in the
manifest and CMS JSON files) keeps reports short.
"""

from __future__ import annotations

from collections.abc import Iterable

LumiMap = dict[int, frozenset[int]]  # run -> LS numbers


def to_ranges(numbers: Iterable[int]) -> list[list[int]]:
    """Sorted, merged inclusive ranges: {1, 2, 3, 7} -> [[1, 3], [7, 7]]."""
    out: list[list[int]] = []
    for n in sorted(set(numbers)):
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def format_ranges(numbers: Iterable[int], limit: int | None = None) -> str:
    """'1-3,7' for people; with `limit`, cut to about that many characters and say how many
    ranges were left out."""
    parts = [f"{a}-{b}" if a != b else str(a) for a, b in to_ranges(numbers)]
    text = ",".join(parts)
    if limit is None or len(text) <= limit:
        return text
    shown: list[str] = []
    for part in parts:
        if len(",".join([*shown, part])) > limit - 12:
            break
        shown.append(part)
    return ",".join(shown) + f",…(+{len(parts) - len(shown)})"

