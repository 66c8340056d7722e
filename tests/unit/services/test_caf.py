"""The CAF client against the CAF twin: DIALS' choice of file, traps avoided, retries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from dialsflow.config.connections import CafSettings
from dialsflow.errors import ServiceError
from dialsflow.services.caf import CafClient, latest, parse_listing
from dialsflow.services.http import RetryPolicy
from dialsflow_emulator.process import EmulatorProcess, free_port
from dialsflow_emulator.world import build_world, iso, utc

from ...clients import caf_client, connection

CLASS = "Collisions24"


def as_ranges(content: dict) -> dict[int, list[tuple[int, int]]]:
    return {int(run): [tuple(pair) for pair in ranges] for run, ranges in content.items()}


@pytest.fixture(scope="module")
def late() -> Iterator[EmulatorProcess]:
    """The demo world a day after the last publication: the lower-case trap is out."""
    files = build_world("demo", 1).cert_files
    now = max(c.published_at for c in files) + timedelta(days=1)
    with EmulatorProcess("--now", iso(now), "--retry-after", "0") as emu:
        yield emu


def test_latest_golden_is_the_truths(emulator, truth):
    with caf_client(emulator) as caf:
        cert = caf.certification()
    assert f"{CLASS}/{cert.name}" == truth["certification"]["golden_latest"]
    assert cert.runs == as_ranges(truth["certification"]["golden_runs"])
    assert cert.url == f"{emulator.url}/CAF/certification/{truth['certification']['golden_latest']}"
    published = next(f["published_at"] for f in truth["certification"]["files"]
                     if f["path"].endswith(cert.name))
    assert cert.last_modified == utc(published).strftime("%Y-%m-%d %H:%M")
    never = set(truth["planted"]["never_certified_runs"])
    assert never.isdisjoint(cert.runs)


def test_traps_are_listed_but_never_chosen(late):
    truth = late.truth()
    with caf_client(late) as caf:
        names = [f.name for f in caf.listing()]
        cert = caf.certification()
    trap = next(f for f in truth["certification"]["files"] if f["path"].endswith("_golden.json"))
    newest = max(truth["certification"]["files"], key=lambda f: f["published_at"])
    assert newest == trap  # published last of all
    assert trap["path"].split("/")[-1] in names and "2024C_Golden.json" in names
    assert f"{CLASS}/{cert.name}" == truth["certification"]["golden_latest"]
    assert cert.name.endswith("_Golden.json") and cert.name.startswith("Cert_Collisions")
    assert cert.runs == as_ranges(truth["certification"]["golden_runs"])


@pytest.mark.parametrize("kind", ["muon", "dcs"])
def test_other_kinds_are_the_newest_of_their_folder(late, kind):
    truth = late.truth()
    folder = "DCSOnly_JSONS/dailyDCSOnlyJSON/" if kind == "dcs" else ""
    suffix = "_DCSOnly_TkPx.json" if kind == "dcs" else "_Muon.json"
    expected = max((f for f in truth["certification"]["files"]
                    if f["path"].startswith(f"{CLASS}/{folder}") and f["path"].endswith(suffix)
                    and "/" not in f["path"][len(CLASS) + 1 + len(folder):]),
                   key=lambda f: f["published_at"])
    with caf_client(late, kind=kind) as caf:
        cert = caf.certification()
    assert f"{CLASS}/{folder}{cert.name}" == expected["path"]
    assert len(cert.runs) == expected["runs"]


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
            certs = [caf.certification() for _ in range(4)]
    finally:
        late.set_faults(fault_rate=0.0)
    assert sum(late.stats()["faults"].values()) > 0
    assert all(c.runs == as_ranges(truth["certification"]["golden_runs"]) for c in certs)


def test_permanent_errors_are_one_line(emulator):
    with caf_client(emulator, cert_class="Collisions99") as caf, \
            pytest.raises(ServiceError) as info:
        caf.certification()
    assert str(info.value) == (f"CAF listing: {emulator.url}/CAF/certification/Collisions99/ "
                               "answered HTTP 404 (no such class or folder?)")
    dead = CafSettings(f"http://127.0.0.1:{free_port()}/CAF/certification", CLASS, "golden",
                       True)
    refused = r"gave up after 2 attempts, last cause: connection refused$"
    with CafClient(dead, policy=RetryPolicy(attempts=2, base_delay=0.01)) as caf, \
            pytest.raises(ServiceError, match=refused):
        caf.certification()


def test_no_json_of_the_kind_yet_certifies_nothing(late):
    """Early in a year the class folder has no Golden JSON: nothing certified, no error."""
    before = late.now()
    late.set_now("2024-04-18T00:00:00Z")  # daily DCS-only JSONs exist, no Golden yet
    try:
        with caf_client(late) as caf:
            cert = caf.certification()
        with caf_client(late, kind="dcs") as caf:
            dcs = caf.certification()
    finally:
        late.set_now(before)
    assert (cert.name, cert.runs, cert.last_run) == (
        f"no golden JSON in {CLASS} yet", {}, None)
    assert not cert.certified(379414)
    assert dcs.runs  # the DCS-only folder already has its daily files
