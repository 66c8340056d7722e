"""CAF certification area client: the certification in force for a class and kind.

Listings are read exactly as DIALS' CAF client reads them (docs/reference/dbs_caf.md B1):
scrape the Apache listing (every `<img alt="[   ]">`, the next `<a>` = name and href, then
date, time and size split on whitespace after the link) and keep the names the kind's regex
matches with `re.match` (prefix-anchored, case-sensitive). The regex is what avoids the
traps: a lower-case `..._golden.json`, era files such as `2024C_Golden.json` and the
`*_Latest.json` copies do not match, however recent they are.

Which files are in force is ours, not DIALS' "newest matching file" (docs/reference/dbs_caf.md
B2 says why that loses runs in production):
- golden and muon: every matching file of the class folder (superseded releases move to
  `outToDate/`, which is a folder, not a file row), except a file whose run range (from its
  name) a newer file's range contains: a cumulative release supersedes the one before it;
- dcs: the daily folder mixes energies (`Collisions24_13p6TeV_…`, `Collisions24Special_900GeV_…`,
  `Collisions24_5p36TeV_…`), so only the job's energy counts, then the same rule (the daily
  files are cumulative: the newest one of the energy remains).
A run certified by several files in force takes its LS ranges from the newest of them.

Retries are services.http's; what an answer means for CAF is `_classify`: a 200 is the page,
tried again when it is not whole (a listing that does not end like one, JSON that does not
parse); 403 and 500 are tried again too, as EOS web answers them now and then (libdc3
retries them); other statuses follow the shared retryable set.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import TypeVar
from urllib.parse import urljoin

import orjson
import requests

from dialsflow.config.connections import CafSettings
from dialsflow.errors import ServiceError
from dialsflow.services import http
from dialsflow.services.http import Client, Outcome, Retrier, RetryPolicy

PRODUCTION_CAF = "https://cms-service-dqmdc.web.cern.ch/CAF/certification"

#: DIALS backend/caf/client.py: name patterns per kind (used with re.match) and the folder
#: below `<Class>/` where the kind's files live.
KIND_PATTERNS = {
    "golden": re.compile(r"Cert_Collisions(.*)_(\d{6})_(\d{6})_Golden.json"),
    "muon": re.compile(r"Cert_Collisions(.*)_(\d{6})_(\d{6})_Muon.json"),
    "dcs": re.compile(r"Collisions(.*)_(.*)_(\d{6})_(\d{6})_DCSOnly_TkPx\.json"),
}
KIND_FOLDERS = {"golden": "", "muon": "", "dcs": "DCSOnly_JSONS/dailyDCSOnlyJSON/"}
#: The first and last run a cumulative file covers, and a daily DCS file's energy tag.
_RUN_RANGE = re.compile(r"_(\d{6})_(\d{6})_[A-Za-z_]+\.json$")
_DCS_ENERGY = re.compile(r"^Collisions[^_]*_([^_]+)_\d{6}_\d{6}_DCSOnly_TkPx\.json$")

#: Tried again besides the shared retryable statuses: EOS web answers these now and then.
EOS_TRANSIENT_STATUS = frozenset({403, 500})

RunRanges = dict[int, list[tuple[int, int]]]
T = TypeVar("T")


@dataclass(frozen=True)
class ListedFile:
    """One file row of an Apache listing."""

    name: str
    href: str
    last_modified: str  # "YYYY-MM-DD HH:MM" as shown (compared as text, like DIALS)
    size: str


@dataclass(frozen=True)
class CertificationJson:
    """A certification JSON: run → inclusive LS ranges; `body` and `http_last_modified`
    are the bytes and the Last-Modified header as served, kept beside the data."""

    name: str
    url: str
    last_modified: str
    runs: RunRanges
    body: bytes = field(default=b"", repr=False, compare=False)
    http_last_modified: str | None = None

    @property
    def modified_at(self) -> datetime:
        """When the file was published: its Last-Modified header, else the listing's date
        (read as UTC), else the epoch."""
        if self.http_last_modified:
            with contextlib.suppress(TypeError, ValueError):
                return parsedate_to_datetime(self.http_last_modified).astimezone(UTC)
        with contextlib.suppress(ValueError):
            return datetime.strptime(self.last_modified, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        return datetime.fromtimestamp(0, UTC)

    def certified(self, run: int) -> bool:
        return bool(self.runs.get(run))

    @property
    def last_run(self) -> int | None:
        return max(self.runs, default=None)


@dataclass(frozen=True)
class Certification:
    """The certification in force: its files (oldest first), merged run by run."""

    folder_url: str
    files: tuple[CertificationJson, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.files]

    def source(self, run: int) -> CertificationJson | None:
        """The newest file in force that certifies the run."""
        return next((f for f in reversed(self.files) if f.certified(run)), None)

    def certified(self, run: int) -> bool:
        return self.source(run) is not None

    def ranges(self, run: int) -> list[tuple[int, int]]:
        found = self.source(run)
        return found.runs[run] if found else []

    @property
    def runs(self) -> list[int]:
        return sorted({run for f in self.files for run, ranges in f.runs.items() if ranges})

    @property
    def last_run(self) -> int | None:
        return max((f.last_run for f in self.files if f.last_run is not None), default=None)


class _Listing(HTMLParser):
    """`img[alt="[   ]"]` → the next `<a>` → the text right after it (DIALS' scrape)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[ListedFile] = []
        self._want_link = False
        self._link: dict[str, str] | None = None  # href and name of the open/just closed <a>
        self._after: str | None = None  # collecting the text after </a>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._flush()
        a = dict(attrs)
        if tag == "img" and a.get("alt") == "[   ]":
            self._want_link = True
        elif tag == "a" and self._want_link:
            self._want_link = False
            self._link = {"href": a.get("href") or "", "name": ""}

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._link is not None and self._after is None:
            self._after = ""

    def handle_data(self, data: str) -> None:
        if self._link is None:
            return
        if self._after is None:
            self._link["name"] += data
        else:
            self._after += data

    def _flush(self) -> None:
        if self._link is not None and self._after is not None:
            parts = self._after.split()
            if len(parts) >= 3:  # date, time, size
                self.rows.append(ListedFile(self._link["name"].strip(), self._link["href"],
                                            f"{parts[0]} {parts[1]}", parts[2]))
            self._link, self._after = None, None

    def close(self) -> None:
        super().close()
        self._flush()


def parse_listing(page: str) -> list[ListedFile]:
    """The file rows of an Apache mod_autoindex page (directories are not rows)."""
    parser = _Listing()
    parser.feed(page)
    parser.close()
    return parser.rows


def latest(files: list[ListedFile], kind: str) -> ListedFile | None:
    """DIALS' own rule (for comparison): the newest last-modified among names the kind's
    regex matches. Equal minutes are broken by name, never by listing order."""
    matching = [f for f in files if KIND_PATTERNS[kind].match(f.name)]
    return max(matching, key=lambda f: (f.last_modified, f.name), default=None)


def in_force(files: list[ListedFile], kind: str, energy: str | None = None
             ) -> list[ListedFile]:
    """The files in force (module docstring), oldest first."""
    matching = [f for f in files if KIND_PATTERNS[kind].match(f.name)]
    if kind == "dcs" and energy is not None:
        matching = [f for f in matching if (m := _DCS_ENERGY.match(f.name))
                    and m[1] == energy]
    matching.sort(key=lambda f: (f.last_modified, f.name))
    kept = []
    for i, f in enumerate(matching):
        span = _run_span(f.name)
        newer = [_run_span(g.name) for g in matching[i + 1:]]
        if span is None or not any(o is not None and o[0] <= span[0] and span[1] <= o[1]
                                   for o in newer):
            kept.append(f)
    return kept


def _run_span(name: str) -> tuple[int, int] | None:
    m = _RUN_RANGE.search(name)
    return (int(m[1]), int(m[2])) if m else None


def parse_cert_json(body: bytes, what: str) -> RunRanges:
    """`{"<run>": [[first, last], ...]}` into int runs and (first, last) tuples."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _Truncated(f"{what} is not valid JSON (cut short?)") from None
    if not isinstance(data, dict):
        raise ServiceError(f"{what}: expected an object of run → LS ranges")
    out: RunRanges = {}
    for run, ranges in data.items():
        try:
            pairs = [(int(first), int(last)) for first, last in ranges]
            out[int(run)] = pairs
        except (TypeError, ValueError):
            raise ServiceError(f"{what}: run {run!r} has malformed LS ranges") from None
    return dict(sorted(out.items()))


class _Truncated(Exception):
    """A body that arrived incomplete: worth another try."""


class CafClient(Client):
    """`CafClient(settings, energy=...).current()`: the certification in force."""

    def __init__(self, settings: CafSettings, *, energy: str | None = None,
                 policy: RetryPolicy | None = None, timeout: float = 60.0) -> None:
        if settings.kind not in KIND_PATTERNS:
            raise ServiceError(f"CAF kind {settings.kind!r} unknown; choose from "
                               f"{', '.join(KIND_PATTERNS)}")
        self.settings = settings
        self.energy = energy if settings.kind == "dcs" else None
        self.retrier = Retrier(policy or RetryPolicy(attempts=5))
        self.timeout = timeout
        self.session = http.pooled_session(pool=4, verify=settings.verify)

    @property
    def folder_url(self) -> str:
        s = self.settings
        return f"{s.url.rstrip('/')}/{s.cert_class}/{KIND_FOLDERS[s.kind]}"

    def _get(self, url: str, what: str, parse: Callable[[requests.Response], T]) -> T:
        """`parse(response)` of a 200; `parse` may raise _Truncated to ask for another try."""
        return self.retrier.call(lambda: self.session.get(url, timeout=self.timeout),
                                 lambda r: _classify(r, f"{what}: {url}", parse),
                                 f"{what}: {url}")

    def listing(self) -> list[ListedFile]:
        """The file rows of the kind's folder."""
        def complete(r: requests.Response) -> list[ListedFile]:
            body = r.content
            if b"</html>" not in body[-200:].lower():
                raise _Truncated("listing page incomplete")
            return parse_listing(body.decode("utf-8", "replace"))

        return self._get(self.folder_url, "CAF listing", complete)

    def ping(self) -> None:
        """The kind's folder answers with a whole listing."""
        self.listing()

    def current(self) -> Certification:
        """Download and parse every file in force. A class folder without one yet (early in
        a year) certifies nothing: an empty Certification, not an error, so the nightly run
        reports its runs as not certified yet instead of failing."""
        chosen = in_force(self.listing(), self.settings.kind, self.energy)
        return Certification(self.folder_url, tuple(self.download(f) for f in chosen))

    def download(self, listed: ListedFile) -> CertificationJson:
        url = urljoin(self.folder_url, listed.href)

        def parse(r: requests.Response) -> CertificationJson:
            return CertificationJson(listed.name, url, listed.last_modified,
                                     parse_cert_json(r.content, listed.name), r.content,
                                     r.headers.get("Last-Modified"))

        return self._get(url, "CAF certification JSON", parse)


def _classify(r: requests.Response, what: str,
              parse: Callable[[requests.Response], T]) -> Outcome[T]:
    if r.status_code == 200:
        try:
            return http.ok(parse(r))
        except _Truncated as exc:
            return http.retry(str(exc))
    if r.status_code in EOS_TRANSIENT_STATUS:
        return http.retry(f"HTTP {r.status_code}")
    hint = " (no such class or folder?)" if r.status_code == 404 else ""
    return http.by_status(r, f"{what} answered HTTP {r.status_code}{hint}")
