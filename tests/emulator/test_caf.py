"""The CAF twin scraped the way DIALS and libdc3 scrape the real area (docs/reference/dbs_caf.md
B1)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
import requests

from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.state import DIALS_AUDIENCE
from dialsflow_emulator.world.basics import iso, utc

#: DIALS backend/caf/client.py lookup patterns, used with re.match.
GOLDEN = r"Cert_Collisions(.*)_(\d{6})_(\d{6})_Golden.json"
MUON = r"Cert_Collisions(.*)_(\d{6})_(\d{6})_Muon.json"
DCS = r"Collisions(.*)_(.*)_(\d{6})_(\d{6})_DCSOnly_TkPx\.json"
DAILY = "DCSOnly_JSONS/dailyDCSOnlyJSON/"

#: Every `img alt="[   ]"`, its next <a>, then the text after the link up to the line end.
FILE_ROW = re.compile(r'<img [^>]*alt="\[   \]"[^>]*>\s*<a href="([^"]*)">([^<]*)</a>([^\n<]*)')


@dataclass(frozen=True)
class Option:
    name: str
    href: str
    last_modified: str  # "YYYY-MM-DD HH:MM", compared as text like DIALS does
    size: str


def parse_listing(page: str) -> list[Option]:
    """The DIALS/libdc3 scrape: name and href from the link, date/time/size split after it."""
    out = []
    for href, name, after in FILE_ROW.findall(page):
        date, clock, size = after.split()
        out.append(Option(name, href, f"{date} {clock}", size))
    return out


def latest(options: list[Option], pattern: str) -> Option:
    return max((o for o in options if re.match(pattern, o.name)),
               key=lambda o: o.last_modified)


class Caf:
    def __init__(self, emu: EmulatorProcess, now: str | None = None) -> None:
        self.emu = emu
        self.base = emu.connections()["caf_default"]["host"]
        self.headers = {"X-Emulator-Now": now} if now else {}

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.base}/{path}", headers=self.headers, timeout=30, **kwargs)

    def listing(self, path: str) -> tuple[str, list[Option]]:
        r = self.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        return r.text, parse_listing(r.text)

    def truth(self) -> dict:
        return requests.get(f"{self.emu.url}/_emulator/truth", headers=self.headers,
                            timeout=30).json()


@pytest.fixture(scope="module")
def caf(emulator: EmulatorProcess) -> Caf:
    return Caf(emulator)


@pytest.fixture(scope="module")
def late(emulator: EmulatorProcess, truth: dict) -> Caf:
    """The same area a day after the last publication (the lower-case trap included)."""
    last = max(utc(f["published_at"]) for f in truth["certification"]["files"])
    return Caf(emulator, iso(last + timedelta(days=1)))


def _is_run_ranges(content: object) -> bool:
    return isinstance(content, dict) and all(
        re.fullmatch(r"\d{6}", run) and ranges and all(
            isinstance(pair, list) and len(pair) == 2 and all(type(x) is int for x in pair)
            and 1 <= pair[0] <= pair[1] for pair in ranges)
        for run, ranges in content.items())


# --------------------------------------------------------------------------- choosing files


def test_latest_golden_by_time_is_the_truths(caf: Caf, truth: dict):
    cls = truth["cert_class"]
    _, options = caf.listing(f"{cls}/")
    golden = latest(options, GOLDEN)
    assert f"{cls}/{golden.name}" == truth["certification"]["golden_latest"]
    assert caf.get(f"{cls}/{golden.href}").json() == truth["certification"]["golden_runs"]
    assert latest(options, MUON).last_modified > golden.last_modified  # published just after


def test_lower_case_golden_trap_is_newest_but_not_matched(late: Caf):
    truth = late.truth()
    cls = truth["cert_class"]
    _, options = late.listing(f"{cls}/")
    newest = max(options, key=lambda o: o.last_modified)
    assert newest.name.endswith("_golden.json")
    assert not re.match(GOLDEN, newest.name)
    assert f"{cls}/{latest(options, GOLDEN).name}" == truth["certification"]["golden_latest"]
    assert not any(re.match(GOLDEN, o.name) for o in options if o.name.startswith("2024C"))


def test_daily_dcs_folder_has_one_growing_file_per_day(caf: Caf, truth: dict):
    cls = truth["cert_class"]
    _, options = caf.listing(f"{cls}/{DAILY}")
    assert options and all(re.match(DCS, o.name) for o in options)
    by_time = sorted(options, key=lambda o: o.last_modified)
    days = [o.last_modified[:10] for o in by_time]
    assert len(days) == len(set(days))  # one a day
    last_runs = [int(re.match(DCS, o.name)[4]) for o in by_time]
    assert last_runs == sorted(last_runs)
    sizes = [len(caf.get(f"{cls}/{DAILY}{o.href}").content) for o in by_time]
    assert sizes == sorted(sizes)  # cumulative: each day's file holds at least the last one
    expected = max((f for f in truth["certification"]["files"] if DAILY in f["path"]
                    and utc(f["published_at"]) <= utc(truth["now"])),
                   key=lambda f: f["published_at"])
    assert f"{cls}/{DAILY}{by_time[-1].name}" == expected["path"]


def test_every_listed_json_is_run_ranges(caf: Caf, truth: dict):
    cls = truth["cert_class"]
    for folder in (f"{cls}/", f"{cls}/{DAILY}"):
        _, options = caf.listing(folder)
        for option in options:
            r = caf.get(folder + option.href)
            assert r.status_code == 200 and r.headers["content-type"] == "application/json"
            assert _is_run_ranges(r.json()), option.name
            if len(r.content) < 973:  # Apache shows small files in plain bytes
                assert option.size == str(len(r.content))


def test_a_later_clock_shows_more_files(caf: Caf, late: Caf, truth: dict):
    cls = truth["cert_class"]
    now_names = {o.name for o in caf.listing(f"{cls}/")[1]}
    late_names = {o.name for o in late.listing(f"{cls}/")[1]}
    assert now_names < late_names
    early = Caf(caf.emu, truth["runs"][0]["start_time"])
    assert early.get(f"{cls}/").status_code == 404  # nothing published yet
    assert parse_listing(early.listing("")[0]) == []


# --------------------------------------------------------------------------- layout


def test_listing_layout_is_apache_autoindex(caf: Caf, truth: dict):
    cls = truth["cert_class"]
    page, options = caf.listing(f"{cls}/")
    assert f"<title>Index of /CAF/certification/{cls}</title>" in page
    assert f"<h1>Index of /CAF/certification/{cls}</h1>" in page
    assert '<a href="?C=N;O=D">Name</a>' in page and "<hr></pre>" in page
    assert ('<img src="/_shared_static_content/icons/back.gif" alt="[PARENTDIR]"> '
            '<a href="/CAF/certification/">Parent Directory</a>') in page
    assert re.search(r'<img src="/_shared_static_content/icons/folder.gif" alt="\[DIR\]"> '
                     r'<a href="DCSOnly_JSONS/">DCSOnly_JSONS/</a> +\d{4}-\d\d-\d\d \d\d:\d\d'
                     r" {4}-\n", page)
    assert all(re.fullmatch(r"\d+|\d\.\dK|\d+K", o.size) for o in options)
    # the date column starts at the same place on every row (tags removed)
    rows = re.sub(r"<[^>]+>", "", page.split("<hr>")[1]).splitlines()
    starts = {re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", row).start() for row in rows
              if re.search(r"\d{4}-\d\d-\d\d", row)}
    assert len(starts) == 1
    assert options == sorted(options, key=lambda o: o.name)  # default: by name


def test_directories_redirect_to_their_slash_and_unknown_paths_are_404(caf: Caf, truth: dict):
    cls = truth["cert_class"]
    r = caf.get(f"{cls}/DCSOnly_JSONS", allow_redirects=False)
    assert r.status_code == 301
    assert r.headers["location"] == f"{caf.base}/{cls}/DCSOnly_JSONS/"
    assert "dailyDCSOnlyJSON/" in caf.get(f"{cls}/DCSOnly_JSONS").text  # followed
    for missing in (f"{cls}/nope.json", "Collisions99/", f"{cls}/{DAILY}x.json/"):
        r = caf.get(missing)
        assert r.status_code == 404 and "<title>404 Not Found</title>" in r.text


@pytest.mark.parametrize(("kind", "folder", "pattern"),
                         [("golden", "", GOLDEN), ("muon", "", MUON), ("dcs", DAILY, DCS)])
def test_dials_caf_endpoint_agrees_with_the_scraped_listing(caf: Caf, truth: dict, kind: str,
                                                            folder: str, pattern: str):
    """DIALS answers /caf/ by scraping this area: both twins must tell the same story."""
    cls = truth["cert_class"]
    _, options = caf.listing(f"{cls}/{folder}")
    scraped = latest(options, pattern)
    conn = caf.emu.connections()["dials_default"]
    token = requests.post(f"{caf.emu.url}/auth/realms/cern/api-access/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": conn["login"],
        "client_secret": conn["password"], "audience": DIALS_AUDIENCE}).json()["access_token"]
    answer = requests.get(f"{caf.emu.url}/api/v1/caf/", timeout=30,
                          params={"class_name": cls, "kind": kind},
                          headers={"Authorization": f"Bearer {token}", "Workspace": "tracker"})
    assert answer.status_code == 200, answer.text[:300]
    body = answer.json()
    assert (body["name"], body["last_modified"], body["size"]) == \
        (scraped.name, scraped.last_modified, scraped.size)
    assert body["url"] == f"{caf.base}/{cls}/{folder}{scraped.href}"
    assert body["content"] == caf.get(f"{cls}/{folder}{scraped.href}").json()
