"""Run selections: which runs a command or a DAG run covers.

Users write `FIRST-LAST` (inclusive range) or `a,b,c` (explicit runs); code asks three
things of either form: does it contain run X, what are its bounds (for server-side
`run_number__gte/lte` filters), and how is it written back for people.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dialsflow.errors import InputError


@dataclass(frozen=True)
class RunSelection:
    first: int
    last: int
    listed: frozenset[int] | None = None  # the explicit runs; None means every run in range

    @classmethod
    def parse(cls, text: str | None) -> RunSelection | None:
        """'380000-380100' (inclusive range) or '380001,380007' (list); None means all runs."""
        if text is None:
            return None
        t = text.strip()
        try:
            if "-" in t:
                low, high = (int(x) for x in t.split("-", 1))
                if low > high or low < 1:
                    raise ValueError
                return cls(low, high)
            return cls.of(int(x) for x in t.split(",") if x.strip())
        except ValueError:
            raise InputError(f"--runs {text!r}: give FIRST-LAST (e.g. 380000-380100) or a "
                             "comma list of run numbers (e.g. 380001,380007)") from None

    @classmethod
    def of(cls, runs: Iterable[int]) -> RunSelection:
        """Exactly these runs (at least one, all positive)."""
        listed = frozenset(int(r) for r in runs)
        if not listed or min(listed) < 1:
            raise ValueError("a run selection needs at least one positive run number")
        return cls(min(listed), max(listed), listed)

    def __contains__(self, run: object) -> bool:
        if not isinstance(run, int):
            return False
        if self.listed is not None:
            return run in self.listed
        return self.first <= run <= self.last

    def __iter__(self) -> Iterator[int]:
        """The selected runs, ascending (a range yields every number in it)."""
        if self.listed is not None:
            return iter(sorted(self.listed))
        return iter(range(self.first, self.last + 1))

    @property
    def bounds(self) -> tuple[int, int]:
        return self.first, self.last

    @property
    def text(self) -> str:
        if self.listed is None:
            return f"{self.first}-{self.last}"
        return ",".join(map(str, sorted(self.listed)))

    def __str__(self) -> str:
        return self.text
