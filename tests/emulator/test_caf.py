"""The CAF twin scraped the way DIALS and libdc3 scrape the real area (docs/reference/dbs_caf.md
B1)."""

from __future__ import annotations

import itertools
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


def _series(name: str) -> str:
    """'Collisions24_13p6TeV', 'Collisions24Special_900GeV' or 'Collisions24_5p36TeV'."""
    return "_".join(name.split("_")[:2])


def test_daily_dcs_folder_has_growing_files_per_energy_with_gaps(caf: Caf, truth: dict):
    cls = truth["cert_class"]
    _, options = caf.listing(f"{cls}/{DAILY}")
    latest_files = [o for o in options if o.name.endswith("_Latest.json")]
    daily = [o for o in options if o not in latest_files]
    assert daily and all(re.match(DCS, o.name) for o in daily)
    assert not any(re.match(DCS, o.name) for o in latest_files)  # DIALS never picks these
    assert {_series(o.name) for o in daily} == {
        "Collisions24_13p6TeV", "Collisions24Special_900GeV", "Collisions24_5p36TeV"}
    pp = sorted((o for o in daily if _series(o.name) == "Collisions24_13p6TeV"),
                key=lambda o: o.last_modified)
    assert all(o.last_modified.endswith(" 19:31") for o in pp)
    days = [utc(o.last_modified[:10] + "T00:00:00Z") for o in pp]
    assert len(days) == len(set(days))  # at most one a day
    assert max(b - a for a, b in itertools.pairwise(days)) >= timedelta(days=6)
    last_runs = [int(re.match(DCS, o.name)[4]) for o in pp]
    assert last_runs == sorted(last_runs)
    sizes = [len(caf.get(f"{cls}/{DAILY}{o.href}").content) for o in pp]
    assert sizes == sorted(sizes)  # cumulative: each file holds at least the last one
    for latest_file in latest_files:  # same content as the newest file of its series
        series = max((o for o in daily if _series(o.name) == _series(latest_file.name)),
                     key=lambda o: o.last_modified)
        assert latest_file.last_modified == series.last_modified
        assert caf.get(f"{cls}/{DAILY}{latest_file.href}").json() == \
            caf.get(f"{cls}/{DAILY}{series.href}").json()


def test_dcs_series_follow_the_oms_energy_of_their_runs(caf: Caf, truth: dict):
    cls = truth["cert_class"]
    _, options = caf.listing(f"{cls}/{DAILY}")
    energy = {str(r["run_number"]): r["energy"] for r in truth["runs"]}
    expected = {"Collisions24_13p6TeV": 6800, "Collisions24Special_900GeV": 450,
                "Collisions24_5p36TeV": 2680}
    for o in options:
        runs = caf.get(f"{cls}/{DAILY}{o.href}").json()
        assert {energy[run] for run in runs} == {expected[_series(o.name)]}, o.name


def test_newest_dcs_file_at_the_end_of_the_season_is_the_pp_reference(late: Caf):
    truth = late.truth()
    _, options = late.listing(f"{truth['cert_class']}/{DAILY}")
    newest = latest(options, DCS)
    assert newest.name.startswith("Collisions24_5p36TeV_")
    assert f"{truth['cert_class']}/{DAILY}{newest.name}" == truth["certification"]["latest"]["dcs"]


def test_superseded_golden_and_muon_move_to_out_to_date(caf: Caf, truth: dict):
    cls = truth["cert_class"]
    page, options = caf.listing(f"{cls}/")
    assert len([o for o in options if re.match(GOLDEN, o.name)]) == 1
    assert len([o for o in options if re.match(MUON, o.name)]) == 1
    now = utc(truth["now"])
    moved = [f for f in truth["certification"]["files"] if f["moved_at"]
             and utc(f["moved_at"]) <= now]
    assert {f["kind"] for f in moved} == {"golden", "muon"}
    newest_move = max(f["moved_at"] for f in moved)
    dir_row = re.search(r'alt="\[DIR\]"> <a href="outToDate/">outToDate/</a> +'
                        r"(\d{4}-\d\d-\d\d \d\d:\d\d) +-", page)
    assert dir_row and dir_row[1] == utc(newest_move).strftime("%Y-%m-%d %H:%M")
    _, out = caf.listing(f"{cls}/outToDate/")
    assert sorted(o.name for o in out) == sorted(f["moved_to"].rsplit("/", 1)[1] for f in moved)
    for f in moved:
        name = f["path"].rsplit("/", 1)[1]
        assert f["path_now"] == f["moved_to"] == f"{cls}/outToDate/{name}"
        assert caf.get(f["path"]).status_code == 404  # gone from the class folder
        served = caf.get(f["moved_to"])
        assert served.status_code == 200 and _is_run_ranges(served.json())
        row = next(o for o in out if o.name == name)  # a move keeps the file's time
        assert row.last_modified == utc(f["published_at"]).strftime("%Y-%m-%d %H:%M")
    assert caf.get(f"{cls}/outToDate", allow_redirects=False).status_code == 301


def test_a_release_moves_its_predecessor_at_its_publication(caf: Caf, truth: dict):
    cls = truth["cert_class"]
    releases = truth["certification"]["golden_releases"]
    before, after = releases[0], releases[1]
    just_before = Caf(caf.emu, iso(utc(after["published_at"]) - timedelta(minutes=1)))
    names = {o.name for o in just_before.listing(f"{cls}/")[1]}
    assert before["path"].rsplit("/", 1)[1] in names
    at = Caf(caf.emu, after["published_at"])
    names = {o.name for o in at.listing(f"{cls}/")[1]}
    assert before["path"].rsplit("/", 1)[1] not in names
    assert after["path"].rsplit("/", 1)[1] in names
    assert at.get(f"{cls}/outToDate/{before['path'].rsplit('/', 1)[1]}").status_code == 200


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


def test_a_later_clock_shows_more_runs(caf: Caf, late: Caf, truth: dict):
    cls = truth["cert_class"]
    golden_now = latest(caf.listing(f"{cls}/")[1], GOLDEN)
    golden_late = latest(late.listing(f"{cls}/")[1], GOLDEN)
    assert golden_late.last_modified > golden_now.last_modified
    runs_now = set(caf.get(f"{cls}/{golden_now.href}").json())
    runs_late = set(late.get(f"{cls}/{golden_late.href}").json())
    assert runs_now - {str(n) for n in truth["planted"]["decertified_runs"]} < runs_late
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
