"""DRF cursor pagination tokens: `next_token` in and out, page sizes, page URLs."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request

from ..httputil import base_url
from .errors import detail

PAGE_SIZE = 10  # DRF PAGE_SIZE in DIALS settings
MAX_PAGE_SIZE = 500  # larger asks are clamped silently
OFFSET_CUTOFF = 1000  # DRF CursorPagination.offset_cutoff

Key = tuple[int, ...]


@dataclass(frozen=True)
class Cursor:
    """DRF cursor: position = ordering values of a row; reverse = page before it."""

    position: Key | None
    reverse: bool = False
    offset: int = 0


def encode_cursor(cursor: Cursor) -> str:
    """base64 of `o=..&r=1&p=<url-quoted JSON list of strings>` (docs/reference/dials.md §1)."""
    tokens: dict[str, str] = {}
    if cursor.offset:
        tokens["o"] = str(cursor.offset)
    if cursor.reverse:
        tokens["r"] = "1"
    if cursor.position is not None:
        tokens["p"] = json.dumps([str(v) for v in cursor.position])
    return base64.b64encode(urlencode(tokens).encode("ascii")).decode("ascii")


def decode_cursor(token: str | None, key_len: int) -> Cursor | None:
    """Parse `next_token`; anything undecodable is DRF's 404 'Invalid cursor'."""
    if not token:
        return None
    try:
        tokens = parse_qs(base64.b64decode(token.encode("ascii")).decode("ascii"),
                          keep_blank_values=True)
        offset = int(tokens.get("o", ["0"])[0])
        if offset < 0:
            raise ValueError(offset)
        reverse = bool(int(tokens.get("r", ["0"])[0]))
        raw = tokens.get("p", [None])[0]
        position = None
        if raw is not None:
            values = json.loads(raw)
            if not isinstance(values, list) or len(values) != key_len:
                raise ValueError(raw)
            position = tuple(int(str(v)) for v in values)
    except (ValueError, TypeError, binascii.Error, RecursionError) as exc:
        raise detail(404, "Invalid cursor") from exc
    return Cursor(position, reverse, min(offset, OFFSET_CUTOFF))


def page_size(raw: str | None) -> int:
    """DRF `_positive_int(strict=True, cutoff=500)`, falling back to the default."""
    try:
        size = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return PAGE_SIZE
    return min(size, MAX_PAGE_SIZE) if size > 0 else PAGE_SIZE


def page_url(request: Request, cursor: Cursor | None) -> str | None:
    """Absolute request URL, next_token replaced, params sorted (DRF replace_query_param)."""
    if cursor is None:
        return None
    query = parse_qs(request.url.query, keep_blank_values=True)
    query["next_token"] = [encode_cursor(cursor)]
    return f"{base_url(request)}{request.url.path}?{urlencode(sorted(query.items()), doseq=True)}"
