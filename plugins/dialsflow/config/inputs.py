"""Users' JSON files, validated up front: pattern lists (seed-style) and the reader for all."""

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
