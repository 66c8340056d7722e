"""Response helpers shared by the service twins."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

DJANGO_404 = (
    b'<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
    b"  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n"
    b"</body>\n</html>\n"
)
DJANGO_500 = b"<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>" \
    b"\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Compact JSON like Django REST framework and dbs2go emit (orjson keeps floats '1.0')."""
    return Response(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json", headers=headers)


def raw_json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def html(body: bytes, status: int) -> Response:
    return Response(body, status_code=status, media_type="text/html; charset=utf-8")


def not_found_html() -> Response:
    return html(DJANGO_404, 404)


def server_error_html() -> Response:
    return html(DJANGO_500, 500)


def bearer_token(request: Request) -> str | None:
    """The token after 'Bearer ' in Authorization, or None when there is no such header."""
    value = request.headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme == "Bearer" else ""


def base_url(request: Request) -> str:
    """Absolute base URL as the server sees it (scheme://host:port), without trailing slash."""
    return f"{request.url.scheme}://{request.url.netloc}"
