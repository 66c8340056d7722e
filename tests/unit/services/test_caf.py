"""The CAF client against the CAF twin: DIALS' choice of file, traps avoided, retries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from dialsflow.config.connections import CafSettings
from dialsflow.errors import ServiceError
from dialsflow.services.caf import (
    CafClient,
    Certification,
    CertificationJson,
    in_force,
    latest,
    parse_listing,
)
from dialsflow.services.http import RetryPolicy
from dialsflow_emulator.process import EmulatorProcess, free_port
from dialsflow_emulator.world import build_world, iso, utc

from ...clients import caf_client, connection

CLASS = "Collisions24"


def as_ranges(content: dict) -> dict[int, list[tuple[int, int]]]:
    return {int(run): [tuple(pair) for pair in ranges] for run, ranges in content.items()}


@pytest.fixture(scope="module")
def late() -> Iterator[EmulatorProcess]:
    """The demo world a day after the last publication: every Golden release out, the
    lower-case trap too, and the newest DCS-only file a 5.36 TeV one."""
    files = build_world("demo", 1).cert_files
    now = max(c.published_at for c in files) + timedelta(days=1)
    with EmulatorProcess("--now", iso(now), "--retry-after", "0") as emu:
        yield emu


def basename(path: str) -> str:
    return path.rsplit("/", 1)[1]


def current_release(truth: dict) -> dict:
    return next(r for r in truth["certification"]["golden_releases"]
                if r["moved_at"] is None or utc(r["moved_at"]) > utc(truth["now"]))


def test_golden_in_force_is_the_current_release(emulator, truth):
    with caf_client(emulator) as caf:
        cert = caf.current()
    release = current_release(truth)
    assert cert.names == [basename(release["path"])]
    assert cert.runs == sorted(release["runs"])
    assert {r: cert.ranges(r) for r in cert.runs} == \
        as_ranges(truth["certification"]["golden_runs"])
    only = cert.files[0]
    assert only.url == f"{emulator.url}/CAF/certification/{release['path']}"
    assert only.last_modified == utc(release["published_at"]).strftime("%Y-%m-%d %H:%M")
    assert set(truth["planted"]["never_certified_runs"]).isdisjoint(cert.runs)


def test_superseded_releases_traps_and_era_files_never_count(late):
    truth = late.truth()
    with caf_client(late) as caf:
        names = [f.name for f in caf.listing()]
        cert = caf.current()
    releases = truth["certification"]["golden_releases"]
    newest = releases[-1]
    assert all(r["moved_at"] for r in releases[:-1])  # in outToDate/, not listed
    assert not {basename(r["path"]) for r in releases[:-1]} & set(names)
    trap = next(f for f in truth["certification"]["files"] if f["path"].endswith("_golden.json"))
    assert basename(trap["path"]) in names and "2024C_Golden.json" in names
    assert cert.names == [basename(newest["path"])]
    assert cert.runs == sorted(newest["runs"])
    # the decertified run was in an earlier release, not in the one in force
    dropped = truth["planted"]["decertified_runs"]
    assert dropped and not set(dropped) & set(cert.runs)
    assert any(set(dropped) <= set(r["runs"]) for r in releases[:-1])


def test_muon_in_force_is_the_newest_muon_release(late):
    truth = late.truth()
    with caf_client(late, kind="muon") as caf:
        cert = caf.current()
    assert f"{CLASS}/{cert.names[0]}" == truth["certification"]["latest"]["muon"]
    assert len(cert.names) == 1


def test_dcs_in_force_is_the_jobs_energy_not_the_newest_file(late):
    """At the end of the season DIALS' rule picks the 5.36 TeV file; a 13.6 TeV job must
    keep its own series."""
    truth = late.truth()
    assert "5p36TeV" in truth["certification"]["latest"]["dcs"]
    settings = CafSettings.from_connection(connection(late, "caf_default"))
    dcs = CafSettings(settings.url, CLASS, "dcs", settings.verify)
    files = [f for f in truth["certification"]["files"]
             if f["kind"] == "dcs" and "_13p6TeV_" in f["path"]]
    newest = max(files, key=lambda f: f["published_at"])
    with CafClient(dcs, energy="13p6TeV") as caf:
        cert = caf.current()
    assert cert.names == [basename(newest["path"])]
    assert len(cert.runs) == newest["runs"]
    with CafClient(dcs, energy="5p36TeV") as caf:
        assert set(caf.current().runs) <= set(truth["planted"]["special_energy_runs"])


def test_listing_scrape_follows_dials_rules():
    page = (
        '<pre><img src="/icons/blank.gif" alt="Icon "> <a href="?C=N;O=D">Name</a><hr>'
        '<img src="/icons/back.gif" alt="[PARENTDIR]"> <a href="/CAF/">Parent Directory</a>   -\n'
        '<img src="/icons/unknown.gif" alt="[   ]"> <a href="Cert_Collisions2022_eraD_357538_'
        '357900_Golden.json">Cert_Collisions2022_eraD_357538_357900_Golden.json</a> '
        "2023-01-30 12:01  1.2K\n"
        '<img src="/icons/unknown.gif" alt="[   ]"> <a href="Cert_Collisions2022_355100_362760_'
        'Golden.json">Cert_Collisions2022_355100_362760_Golden.json</a> 2023-01-30 11:59   44K\n'
        '<img src="/icons/unknown.gif" alt="[   ]"> <a href="Cert_Collisions2022_ppref_1_2_golden'
        '.json">Cert_Collisions2022_ppref_1_2_golden.json</a> 2024-02-01 08:00  291\n'
        '<img src="/icons/folder.gif" alt="[DIR]"> <a href="DCSOnly_JSONS/">DCSOnly_JSONS/</a>'
        "  2024-03-01 10:00    -\n"
        '<img src="/icons/p.gif" alt="[   ]"> <a href="compareJSON.py">compareJSON.py</a>'
        "  2022-08-01 10:00  2.1K\n<hr></pre>"
    )
    rows = parse_listing(page)
    assert [(r.name, r.last_modified, r.size) for r in rows] == [
        ("Cert_Collisions2022_eraD_357538_357900_Golden.json", "2023-01-30 12:01", "1.2K"),
        ("Cert_Collisions2022_355100_362760_Golden.json", "2023-01-30 11:59", "44K"),
        ("Cert_Collisions2022_ppref_1_2_golden.json", "2024-02-01 08:00", "291"),
        ("compareJSON.py", "2022-08-01 10:00", "2.1K"),
    ]
    # DIALS' rule, documented for 2022 (docs/reference/dbs_caf.md B1): the later-modified
    # era file wins.
    assert latest(rows, "golden").name.startswith("Cert_Collisions2022_eraD")
    assert latest(rows, "muon") is None


def test_transient_faults_are_retried(late):
    truth = late.truth()
    late.set_faults(fault_rate=0.6, fault_kinds=["502", "503", "429", "reset", "truncate"])
    late.reset_stats()
    try:
        settings = CafSettings.from_connection(connection(late, "caf_default"))
        with CafClient(settings, policy=RetryPolicy(attempts=5, base_delay=0.01)) as caf:
            certs = [caf.current() for _ in range(4)]
    finally:
        late.set_faults(fault_rate=0.0)
    assert sum(late.stats()["faults"].values()) > 0
    golden = as_ranges(truth["certification"]["golden_runs"])
    assert all({r: c.ranges(r) for r in c.runs} == golden for c in certs)


def test_permanent_errors_are_one_line(emulator):
    with caf_client(emulator, cert_class="Collisions99") as caf, \
            pytest.raises(ServiceError) as info:
        caf.current()
    assert str(info.value) == (f"CAF listing: {emulator.url}/CAF/certification/Collisions99/ "
                               "answered HTTP 404 (no such class or folder?)")
    dead = CafSettings(f"http://127.0.0.1:{free_port()}/CAF/certification", CLASS, "golden",
                       True)
    refused = r"gave up after 2 attempts, last cause: connection refused$"
    with CafClient(dead, policy=RetryPolicy(attempts=2, base_delay=0.01)) as caf, \
            pytest.raises(ServiceError, match=refused):
        caf.current()


def test_no_json_of_the_kind_yet_certifies_nothing(late):
    """Early in a year the class folder has no Golden JSON: nothing certified, no error."""
    truth = late.truth()
    first = min(utc(r["published_at"]) for r in truth["certification"]["golden_releases"])
    before = late.now()
    late.set_now(iso(first - timedelta(days=1)))  # daily DCS-only JSONs exist, no Golden yet
    try:
        with caf_client(late) as caf:
            cert = caf.current()
        with caf_client(late, kind="dcs") as caf:
            dcs = caf.current()
    finally:
        late.set_now(before)
    assert (cert.names, cert.runs, cert.last_run) == ([], [], None)
    assert not cert.certified(379433)
    assert dcs.runs  # the DCS-only folder already has its daily files


def _listing(*rows: tuple[str, str]) -> str:
    """An Apache listing page with these (name, "YYYY-MM-DD HH:MM") file rows."""
    body = "".join(f'<img src="/icons/unknown.gif" alt="[   ]"> <a href="{name}">{name}</a>  '
                   f"{when}  1.2K\n" for name, when in rows)
    return (f'<html><body><pre><img src="/icons/folder.gif" alt="[DIR]"> '
            f'<a href="outToDate/">outToDate/</a> 2024-12-19 16:30 -\n{body}<hr></pre>'
            "</body></html>")


def test_golden_in_force_is_every_release_not_superseded():
    rows = parse_listing(_listing(
        ("2024I_Golden.json", "2024-10-29 12:16"),
        ("Cert_Collisions2024_eraC_379412_380100_Golden.json", "2024-06-02 10:00"),
        ("Cert_Collisions2024_379412_386951_Golden.json", "2024-12-19 16:31"),
        ("Cert_Collisions2024_379412_385000_Golden.json", "2024-11-01 10:00"),
        ("Cert_Collisions2024_387000_387721_Golden.json", "2024-12-01 09:00"),
        ("Cert_Collisions2024_ppref_387474_387721_golden.json", "2024-12-28 20:49"),
        ("Cert_Collisions2024_379412_386951_Muon.json", "2024-12-19 16:31"),
    ))
    names = [f.name for f in in_force(rows, "golden")]
    # the era and older cumulative files inside the newest range are superseded; a file
    # whose range sticks out stays; era files, other kinds and lower-case names never count
    assert names == ["Cert_Collisions2024_387000_387721_Golden.json",
                     "Cert_Collisions2024_379412_386951_Golden.json"]
    assert latest(rows, "golden").name == "Cert_Collisions2024_379412_386951_Golden.json"


def test_dcs_in_force_is_the_newest_of_the_jobs_energy():
    """At the end of 2024 the newest daily file is a 5.36 TeV one: DIALS' rule would take it
    and leave every 13.6 TeV run uncertified."""
    rows = parse_listing(_listing(
        ("Collisions24Special_900GeV_378238_378751_DCSOnly_TkPx.json", "2024-11-05 16:16"),
        ("Collisions24Special_900GeV_Latest.json", "2024-11-05 16:16"),
        ("Collisions24_13p6TeV_378981_386951_DCSOnly_TkPx.json", "2024-10-30 19:31"),
        ("Collisions24_13p6TeV_378981_386800_DCSOnly_TkPx.json", "2024-10-28 19:31"),
        ("Collisions24_13p6TeV_Latest.json", "2024-10-30 19:31"),
        ("Collisions24_5p36TeV_387474_387721_DCSOnly_TkPx.json", "2024-11-05 16:20"),
        ("Collisions24_5p36TeV_Latest.json", "2024-11-05 16:20"),
    ))
    assert latest(rows, "dcs").name.startswith("Collisions24_5p36TeV_")
    assert [f.name for f in in_force(rows, "dcs", "13p6TeV")] == [
        "Collisions24_13p6TeV_378981_386951_DCSOnly_TkPx.json"]
    assert [f.name for f in in_force(rows, "dcs", "900GeV")] == [
        "Collisions24Special_900GeV_378238_378751_DCSOnly_TkPx.json"]
    assert in_force(rows, "dcs", "7TeV") == []


def test_a_run_takes_its_ranges_from_the_newest_file_in_force():
    old = CertificationJson("a.json", "u", "2024-06-01 10:00", {1: [(1, 10)], 2: [(1, 5)]})
    new = CertificationJson("b.json", "u", "2024-09-01 10:00", {2: [(1, 3), (5, 9)], 3: []})
    cert = Certification("folder", (old, new))
    assert (cert.ranges(1), cert.ranges(2), cert.ranges(3)) == ([(1, 10)], [(1, 3), (5, 9)], [])
    assert cert.source(2) is new and cert.source(1) is old and cert.source(3) is None
    assert cert.runs == [1, 2] and cert.last_run == 3 and cert.names == ["a.json", "b.json"]
