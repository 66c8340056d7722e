"""CAF certification area twin: `/CAF/certification/...` as Apache mod_autoindex serves it.

Contract: docs/reference/dbs_caf.md part B1. Directory listings keep the exact layout
of the libdc3 test fixtures (captured from the real server), because DIALS and libdc3
scrape them: `<img alt="[   ]">`, the next `<a>`, then date, time and size split on
whitespace; folders as `<img alt="[DIR]">` rows with a trailing slash and size `-`. Files
come from `World.cert_area(now)`: a path written again shows its latest version, a
superseded cumulative Golden or Muon file is served from `outToDate/` once its successor is
out (404 at its old path), and directories exist once something below them is.

Layout details taken from the fixtures: the name column is as wide as the longest name
(at least 23, Apache's default), sizes are apr_strfsize's 4-character field, an entry's
time has minute resolution, the parent row has a 19-space date column, trailing blanks are
not kept, and the title drops the trailing slash. A file shows its own modification time (a
move keeps it); a directory the time an entry was last created in it. Times are shown in
UTC (the server's time zone is the emulator's choice). No authentication (DIALS uses none);
occasional 403s are left to fault injection.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .httputil import base_url
from .state import EmulatorState
from .world.entities import CertFile
from .world.model import Placed, World

PREFIX = "/CAF/certification"
ICONS = "/_shared_static_content/icons"
MIN_NAME_WIDTH = 23  # mod_autoindex DEFAULT_NAME_WIDTH; NameWidth=* only widens it
PARENT_DATE_BLANK = " " * 19  # what the fixtures show where a parent row's date would be

APACHE_PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>{title}</title>\n'
    "</head><body>\n<h1>{heading}</h1>\n<p>{text}</p>\n</body></html>\n"
)


@dataclass(frozen=True)
class Entry:
    """One row of a listing; a directory has a trailing '/' and no size."""

    name: str
    mtime: datetime
    size: int | None


def cert_bytes(cert: CertFile) -> bytes:
    """The file's body: {"<run>": [[first, last], ...]} as compact JSON."""
    return orjson.dumps(cert.content)


def apache_size(size: int | None) -> str:
    """apr_strfsize: a 4-character field, '  - ' for directories, '291 ', '1.2K', ' 44K'."""
    if size is None:
        return "  - "
    if size < 973:
        return f"{size:3d} "
    for unit in "KMGTPE":
        remain, size = size & 1023, size >> 10
        if size >= 973:
            continue
        if size < 9 or (size == 9 and remain < 973):
            tenths = (remain * 5 + 256) // 512
            if tenths >= 10:
                size, tenths = size + 1, 0
            return f"{size}.{tenths}{unit}"
        return f"{size + (remain >= 512):3d}{unit}"
    return "****"


# --------------------------------------------------------------------------- the area


def published(world: World, now: datetime) -> dict[str, Placed]:
    """Every path of the area at `now` (relative to /CAF/certification/)."""
    return world.cert_area(now)


def entries(area: dict[str, Placed], prefix: str) -> list[Entry] | None:
    """The rows of directory `prefix` ('' or ending in '/'); None if it does not exist.

    A file's time is its own modification time; a directory's is when an entry was last
    created directly in it, as a filesystem keeps directory mtimes."""
    files: dict[str, Placed] = {}
    dirs: set[str] = set()
    for path, placed in area.items():
        if not path.startswith(prefix):
            continue
        head, slash, _ = path[len(prefix):].partition("/")
        if slash:
            dirs.add(head + "/")
        else:
            files[head] = placed
    if prefix and not files and not dirs:
        return None
    rows = [Entry(name, placed.cert.published_at, len(cert_bytes(placed.cert)))
            for name, placed in files.items()]
    rows += [Entry(name, _dir_mtime(area, prefix + name), None) for name in sorted(dirs)]
    return rows


def _dir_mtime(area: dict[str, Placed], prefix: str) -> datetime:
    """When the newest direct child of the directory appeared."""
    born: dict[str, datetime] = {}
    for path, placed in area.items():
        if path.startswith(prefix):
            child = path[len(prefix):].partition("/")[0]
            born[child] = min(born.get(child, placed.created), placed.created)
    return max(born.values())


# --------------------------------------------------------------------------- HTML

SORT_COLUMNS = {"N": "Name", "M": "Last modified", "S": "Size", "D": "Description"}


def _sort_order(query: str) -> tuple[str, str]:
    """mod_autoindex `?C=<column>;O=<A|D>`; name ascending by default."""
    args = dict(part.partition("=")[::2] for part in query.replace("&", ";").split(";"))
    column = args.get("C", "N") if args.get("C") in SORT_COLUMNS else "N"
    return column, "D" if args.get("O") == "D" else "A"


def _sorted(rows: list[Entry], column: str, order: str) -> list[Entry]:
    by_name = sorted(rows, key=lambda e: e.name)  # byte order, as Apache compares names
    if column == "M":
        by_name.sort(key=lambda e: e.mtime)
    elif column == "S":
        by_name.sort(key=lambda e: -1 if e.size is None else e.size)
    return by_name[::-1] if order == "D" else by_name


def _header(width: int, column: str, order: str) -> str:
    """Column titles as sort links: the current column's link flips its order."""
    def link(key: str) -> str:
        flip = "D" if key == column and order == "A" else "A"
        return f'<a href="?C={key};O={flip}">{SORT_COLUMNS[key]}</a>'

    return (f'<img src="{ICONS}/blank.gif" alt="Icon "> {link("N")}{" " * (width - 3)}'
            f'{link("M")}      {link("S")}  {link("D")}')


def _row(entry: Entry, width: int) -> str:
    icon, alt = ("folder.gif", "[DIR]") if entry.size is None else ("unknown.gif", "[   ]")
    name = html.escape(entry.name)
    line = (f'<img src="{ICONS}/{icon}" alt="{alt}"> <a href="{quote(entry.name)}">{name}</a>'
            f'{" " * (width - len(entry.name))} {entry.mtime:%Y-%m-%d %H:%M}  '
            f"{apache_size(entry.size)}")
    return line.rstrip()


def listing_html(path: str, rows: list[Entry], query: str) -> bytes:
    """The mod_autoindex page of directory `path` (absolute, with trailing slash)."""
    title = html.escape(path.rstrip("/") or "/")
    width = max([MIN_NAME_WIDTH, *(len(e.name) for e in rows)])
    column, order = _sort_order(query)
    parent = path.rstrip("/").rpartition("/")[0] + "/"
    parent_row = (f'<img src="{ICONS}/back.gif" alt="[PARENTDIR]"> <a href="{parent}">Parent '
                  f'Directory</a>{" " * (width - 16)} {PARENT_DATE_BLANK}  -')
    lines = [_row(e, width) for e in _sorted(rows, column, order)]
    page = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html>\n <head>\n'
        f"  <title>Index of {title}</title>\n </head>\n <body>\n<h1>Index of {title}</h1>\n"
        f"<pre>{_header(width, column, order)}<hr>{parent_row}\n"
        + "".join(line + "\n" for line in lines)
        + "<hr></pre>\n</body></html>\n"
    )
    return page.encode()


def _apache_page(status: int, heading: str, text: str) -> bytes:
    title = f"{status} {heading}"
    return APACHE_PAGE.format(title=title, heading=heading, text=text).encode()


# --------------------------------------------------------------------------- HTTP


def routes(state: EmulatorState) -> list[BaseRoute]:
    def endpoint(request: Request) -> Response:
        rest = request.path_params["rest"]
        if rest and not rest.startswith("/"):  # e.g. /CAF/certificationX
            return _not_found()
        relative = rest[1:]
        area = published(state.world, state.now_for(request.headers))
        if relative in area:
            return _file_response(area[relative].cert)
        prefix = relative if not relative or relative.endswith("/") else relative + "/"
        rows = entries(area, prefix)
        if rows is None:
            return _not_found()
        if not rest.endswith("/"):  # mod_dir: a directory is only listed with its slash
            return _moved(request, PREFIX + "/" + prefix)
        return Response(listing_html(PREFIX + "/" + prefix, rows, request.url.query), 200,
                        media_type="text/html;charset=UTF-8")

    return [Route(PREFIX + "{rest:path}", endpoint, methods=["GET"])]


def _file_response(cert: CertFile) -> Response:
    return Response(cert_bytes(cert), 200, media_type="application/json",
                    headers={"Last-Modified": format_datetime(cert.published_at, usegmt=True)})


def _not_found() -> Response:
    return Response(_apache_page(404, "Not Found",
                                 "The requested URL was not found on this server."), 404,
                    media_type="text/html; charset=iso-8859-1")


def _moved(request: Request, path: str) -> Response:
    location = base_url(request) + quote(path) + (f"?{request.url.query}"
                                                   if request.url.query else "")
    body = _apache_page(301, "Moved Permanently",
                        f'The document has moved <a href="{html.escape(location)}">here</a>.')
    return Response(body, 301, media_type="text/html; charset=iso-8859-1",
                    headers={"Location": location})
