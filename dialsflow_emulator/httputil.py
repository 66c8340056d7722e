"""Response helpers shared by the service twins."""

from __future__ import annotations

import secrets
import string
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

# Django's pages when DEBUG is off and the project has no 404.html/500.html templates
# (django: views/defaults.py ERROR_PAGE_TEMPLATE; DIALS has neither template,
# cms-DQM/dials: backend/templates/).
DJANGO_404 = (
    b'\n<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n'
    b"<body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>"
    b"\n</body>\n</html>\n"
)
DJANGO_500 = (
    b'\n<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n'
    b"</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"
)

#: nginx's own error pages (nginx: src/http/ngx_http_special_response.c), as its proxies
#: answer when the upstream fails or is too slow.
NGINX_PAGES = {
    502: b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 "
         b"Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
    503: b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>"
         b"\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx"
         b"</center>\r\n</body>\r\n</html>\r\n",
    504: b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>"
         b"504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
         b"</html>\r\n",
}


def debreach_comment() -> bytes:
    """DIALS' outermost middleware appends a random HTML comment (12 to 24 letters and digits)
    to every text/html answer (cms-DQM/dials: backend/dials/settings.py MIDDLEWARE,
    debreach.middleware.RandomCommentMiddleware)."""
    length = 12 + secrets.randbelow(13)
    return f"<!-- {''.join(secrets.choice(ALNUM) for _ in range(length))} -->".encode()


ALNUM = string.ascii_letters + string.digits


async def send_page(send, status: int, body: bytes, content_type: bytes,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """Send a whole answer from ASGI middleware (a gateway's own pages, throttling)."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (
        extra or [])})
    await send({"type": "http.response.body", "body": body})


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Compact JSON like Django REST framework and dbs2go emit (orjson keeps floats '1.0')."""
    return Response(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json", headers=headers)


def raw_json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def html(body: bytes, status: int) -> Response:
    return Response(body, status_code=status, media_type="text/html; charset=utf-8")


def not_found_html() -> Response:
    """DIALS' answer to a path no route matches (Django's 404 page)."""
    return html(DJANGO_404 + debreach_comment(), 404)


def server_error_html() -> Response:
    """DIALS' answer to an unhandled exception, such as a database error (Django's 500 page)."""
    return html(DJANGO_500 + debreach_comment(), 500)


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
