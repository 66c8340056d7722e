"""User inputs, validated up front: pattern lists (seed-style JSON files) and run selections."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from dialsflow.errors import InputError


def load_patterns(path: str | Path, what: str) -> list[str]:
    """A JSON list of names or regexes (PostgreSQL-style search, `\\\\+` escapes a plus)."""
    p = Path(path)
    data = read_json(p, what)
    if not isinstance(data, list) or not all(isinstance(x, str) and x.strip() for x in data):
        raise InputError(f"{what} file {p} must be a JSON list of non-empty strings")
    if not data:
        raise InputError(f"{what} file {p} is an empty list: name at least one {what[:-1]}")
    for pattern in data:
        check_regex(pattern, what)
    return list(dict.fromkeys(data))


def read_json(path: Path, what: str, hint: str = "") -> Any:
    """A user's JSON file, or an InputError of one line saying what is wrong with it."""
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {path}{hint}") from None
    except IsADirectoryError:
        raise InputError(f"{what} file is a directory: {path}") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{what} file {path} is not valid JSON: {exc}") from None
    except OSError as exc:  # name too long, permission denied, ...
        raise InputError(f"{what} file {path} cannot be read: {exc.strerror or exc}") from None


def check_regex(pattern: str, what: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise InputError(f"invalid regex in {what}: {pattern!r} ({exc})") from None


#: A run selection: an inclusive (first, last) range or a set of run numbers.
RunSelection = tuple[int, int] | frozenset[int]


def parse_runs(text: str | None) -> RunSelection | None:
    """'380000-380100' (inclusive range) or '380001,380007' (list); None means all runs."""
    if text is None:
        return None
    t = text.strip()
    try:
        if "-" in t:
            low, high = (int(x) for x in t.split("-", 1))
            if low > high or low < 1:
                raise ValueError
            return (low, high)
        runs = frozenset(int(x) for x in t.split(",") if x.strip())
        if not runs or min(runs) < 1:
            raise ValueError
        return runs
    except ValueError:
        raise InputError(f"--runs {text!r}: give FIRST-LAST (e.g. 380000-380100) or a comma "
                         "list of run numbers (e.g. 380001,380007)") from None


def run_selected(run: int, selection: RunSelection | None) -> bool:
    if selection is None:
        return True
    if isinstance(selection, tuple):
        return selection[0] <= run <= selection[1]
    return run in selection
