"""CAF certification area client: the latest certification JSON of a class and kind.

The file is chosen exactly as DIALS' CAF client chooses it (das_caf_api.md B1): scrape the
Apache listing (every `<img alt="[   ]">`, the next `<a>` = name and href, then date, time
and size split on whitespace after the link), keep the names the kind's regex matches with
`re.match` (prefix-anchored, case-sensitive), and take the newest "YYYY-MM-DD HH:MM". The
regex is what avoids the traps: a lower-case `..._golden.json` and era files such as
`2024C_Golden.json` do not match, however recent they are.

Transient failures (connection errors, resets, 403 as EOS web sometimes answers, 429 with
Retry-After, 5xx) are retried by urllib3 on the adapter; a body cut short (or a listing that
does not end like a complete page) is retried by our loop. Anything else is a ServiceError.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

import orjson
import requests

from dialsflow.config.connections import CafSettings
from dialsflow.errors import ServiceError
from dialsflow.services.http import RetryPolicy, describe_error, retrying_session

PRODUCTION_CAF = "https://cms-service-dqmdc.web.cern.ch/CAF/certification"

#: DIALS backend/caf/client.py: name patterns per kind (used with re.match) and the folder
#: below `<Class>/` where the kind's files live.
KIND_PATTERNS = {
    "golden": re.compile(r"Cert_Collisions(.*)_(\d{6})_(\d{6})_Golden.json"),
    "muon": re.compile(r"Cert_Collisions(.*)_(\d{6})_(\d{6})_Muon.json"),
    "dcs": re.compile(r"Collisions(.*)_(.*)_(\d{6})_(\d{6})_DCSOnly_TkPx\.json"),
}
KIND_FOLDERS = {"golden": "", "muon": "", "dcs": "DCSOnly_JSONS/dailyDCSOnlyJSON/"}

#: Retried by urllib3: 403 too, as EOS web answers it now and then (libdc3 retries it).
RETRIED_STATUS = (403, 429, 500, 502, 503, 504)

RunRanges = dict[int, list[tuple[int, int]]]


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


class CafClient:
    """`CafClient(settings).certification()`: the latest JSON of the settings' class/kind."""

    def __init__(self, settings: CafSettings, *, policy: RetryPolicy | None = None,
                 timeout: float = 60.0) -> None:
        if settings.kind not in KIND_PATTERNS:
            raise ServiceError(f"CAF kind {settings.kind!r} unknown; choose from "
                               f"{', '.join(KIND_PATTERNS)}")
        self.settings = settings
        self.policy = policy or RetryPolicy(attempts=5)
        self.timeout = timeout
        # urllib3 retries status codes and connections; our loop, bodies cut short.
        self.session = retrying_session(self.policy, pool=4, verify=settings.verify,
                                        status=RETRIED_STATUS)

    @property
    def folder_url(self) -> str:
        s = self.settings
        return f"{s.url.rstrip('/')}/{s.cert_class}/{KIND_FOLDERS[s.kind]}"

    def _get(self, url: str, what: str,
             check: Callable[[bytes], None] | None = None) -> bytes:
        """A 200 body, complete; `check(body)` may raise _Truncated to ask for another try."""
        cause = ""
        for attempt in range(self.policy.attempts):
            if attempt:
                time.sleep(self.policy.delay(attempt))
            try:
                r = self.session.get(url, timeout=self.timeout)
                body = r.content
            except requests.exceptions.RetryError as exc:
                raise ServiceError(f"{what}: {url} kept failing ({describe_error(exc)})") from None
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                cause = describe_error(exc)
                continue
            if r.status_code != 200:
                hint = {404: " (no such class or folder?)"}.get(
                    r.status_code, " after retries" if r.status_code in RETRIED_STATUS else "")
                raise ServiceError(f"{what}: {url} answered HTTP {r.status_code}{hint}")
            expected = r.headers.get("Content-Length")
            if expected and expected.isdigit() and int(expected) != len(body):
                cause = "body cut short"
                continue
            try:
                if check:
                    check(body)
            except _Truncated as exc:
                cause = str(exc)
                continue
            return body
        raise ServiceError(f"{what}: {url} gave up after {self.policy.attempts} attempts, last "
                           f"cause: {cause}")

    def listing(self) -> list[ListedFile]:
        """The file rows of the kind's folder."""
        def complete(body: bytes) -> None:
            if b"</html>" not in body[-200:].lower():
                raise _Truncated("listing page incomplete")

        page = self._get(self.folder_url, "CAF listing", complete)
        return parse_listing(page.decode("utf-8", "replace"))

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
        holder: list[RunRanges] = []

        def parsed(body: bytes) -> None:
            holder.append(parse_cert_json(body, chosen.name))

        self._get(url, "CAF certification JSON", parsed)
        return CertificationJson(chosen.name, url, chosen.last_modified, holder[-1])

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> CafClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
