"""CAF certification area client: the latest certification JSON of a class and kind.

The file is chosen exactly as DIALS' CAF client chooses it (docs/reference/dbs_caf.md B1):
scrape the Apache listing (every `<img alt="[   ]">`, the next `<a>` = name and href, then
date, time and size split on whitespace after the link), keep the names the kind's regex
matches with `re.match` (prefix-anchored, case-sensitive), and take the newest "YYYY-MM-DD
HH:MM". The regex is what avoids the traps: a lower-case `..._golden.json` and era files
such as `2024C_Golden.json` do not match, however recent they are.

Retries are services.http's; what an answer means for CAF is `_classify`: a 200 is the page,
tried again when it is not whole (a listing that does not end like one, JSON that does not
parse); 403 and 500 are tried again too, as EOS web answers them now and then (libdc3
retries them); other statuses follow the shared retryable set.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
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
    """A certification JSON: run → inclusive LS ranges."""

    name: str
    url: str
    last_modified: str
    runs: RunRanges

    def certified(self, run: int) -> bool:
        return bool(self.runs.get(run))

    @property
    def last_run(self) -> int | None:
        return max(self.runs, default=None)


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
    """DIALS' rule: newest last-modified among names the kind's regex matches (re.match).
    Equal minutes are broken by name, so the choice never depends on listing order."""
    pattern = KIND_PATTERNS[kind]
    matching = [f for f in files if pattern.match(f.name)]
    return max(matching, key=lambda f: (f.last_modified, f.name), default=None)


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
    """`CafClient(settings).certification()`: the latest JSON of the settings' class/kind."""

    def __init__(self, settings: CafSettings, *, policy: RetryPolicy | None = None,
                 timeout: float = 60.0) -> None:
        if settings.kind not in KIND_PATTERNS:
            raise ServiceError(f"CAF kind {settings.kind!r} unknown; choose from "
                               f"{', '.join(KIND_PATTERNS)}")
        self.settings = settings
        self.retrier = Retrier(policy or RetryPolicy(attempts=5))
        self.timeout = timeout
        self.session = http.pooled_session(pool=4, verify=settings.verify)

    @property
    def folder_url(self) -> str:
        s = self.settings
        return f"{s.url.rstrip('/')}/{s.cert_class}/{KIND_FOLDERS[s.kind]}"

    def _get(self, url: str, what: str, parse: Callable[[bytes], T]) -> T:
        """`parse(body)` of a 200; `parse` may raise _Truncated to ask for another try."""
        return self.retrier.call(lambda: self.session.get(url, timeout=self.timeout),
                                 lambda r: _classify(r, f"{what}: {url}", parse),
                                 f"{what}: {url}")

    def listing(self) -> list[ListedFile]:
        """The file rows of the kind's folder."""
        def complete(body: bytes) -> list[ListedFile]:
            if b"</html>" not in body[-200:].lower():
                raise _Truncated("listing page incomplete")
            return parse_listing(body.decode("utf-8", "replace"))

        return self._get(self.folder_url, "CAF listing", complete)

    def ping(self) -> None:
        """The kind's folder answers with a whole listing."""
        self.listing()

    def certification(self) -> CertificationJson:
        """Download and parse the latest JSON of the kind. A class folder without one yet
        (early in a year) certifies nothing: an empty CertificationJson, not an error, so the
        nightly run reports its runs as not certified yet instead of failing."""
        s = self.settings
        chosen = latest(self.listing(), s.kind)
        if chosen is None:
            return CertificationJson(f"no {s.kind} JSON in {s.cert_class} yet", self.folder_url,
                                 "", {})
        url = urljoin(self.folder_url, chosen.href)
        runs = self._get(url, "CAF certification JSON",
                         lambda body: parse_cert_json(body, chosen.name))
        return CertificationJson(chosen.name, url, chosen.last_modified, runs)


def _classify(r: requests.Response, what: str, parse: Callable[[bytes], T]) -> Outcome[T]:
    if r.status_code == 200:
        try:
            return http.ok(parse(r.content))
        except _Truncated as exc:
            return http.retry(str(exc))
    if r.status_code in EOS_TRANSIENT_STATUS:
        return http.retry(f"HTTP {r.status_code}")
    hint = " (no such class or folder?)" if r.status_code == 404 else ""
    return http.by_status(r, f"{what} answered HTTP {r.status_code}{hint}")
