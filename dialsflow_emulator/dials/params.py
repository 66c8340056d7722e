"""Query filters as django-filter validates them: numbers, flags, exact names and regexes."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from ..httputil import json_response, server_error_html
from .errors import ApiError
from .pgregex import PgRegexError, Unsupported, compile_are

BIG = 2**63  # beyond any id: clamps absurd filter values before int()

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
        """`__regex` is PostgreSQL's `~` (pgregex). A pattern PostgreSQL rejects is a
        DataError, which DIALS answers with Django's HTML 500 (docs/reference/dials.md §1)."""
        pattern = self._values.get(name)
        if pattern is None:
            return None
        try:
            return compile_are(pattern)
        except PgRegexError as exc:
            raise ApiError(server_error_html()) from exc
        except Unsupported as exc:  # valid PostgreSQL the emulator cannot run: say so
            raise ApiError(json_response(
                {"detail": f"dialsflow emulator: {exc} is not modelled"}, 501)) from exc

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
            return always
        return lambda s: (exact is None or s == exact) and (
            pattern is None or pattern.search(s) is not None)


def always(_: object) -> bool:
    return True


def within(value: object, allowed: frozenset | None) -> bool:
    """Whether an `id_set`/`many` filter admits value (None: unfiltered)."""
    return allowed is None or value in allowed


NO_PARAMS = Params({}, ())

PAGING = ("next_token", "page_size", "fields")
DATASET_PARAMS = ("dataset", "dataset__regex")
RUN_PARAMS = ("run_number", "run_number__lte", "run_number__gte")
LS_PARAMS = ("ls_number", "ls_number__lte", "ls_number__gte")
LFN_PARAMS = ("logical_file_name", "logical_file_name__regex")
ME_PARAMS = ("me", "me__regex")
