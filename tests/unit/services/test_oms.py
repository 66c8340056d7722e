"""OMS runs since a time or by number, directly with omsapi and through DIALS' oms-proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from dialsflow.config.connections import OmsSettings
from dialsflow.errors import ServiceError
from dialsflow.services import oms as oms_module
from dialsflow.services.oms import DirectOms
from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.world import build_world, iso, utc

from ...clients import connection, oms

VIAS = ["direct", "dials"]


def started_since(truth: dict, start) -> list[dict]:
    """The runs OMS knows at the truth's clock that started at or after `start`."""
    now = utc(truth["now"])
    return [r for r in truth["runs"] if start <= utc(r["start_time"]) <= now]


@pytest.fixture(scope="module")
def midrun() -> Iterator[EmulatorProcess]:
    """The demo world while its longest run is being taken."""
    run = max(build_world("demo", 1).runs, key=lambda r: r.n_ls)
    with EmulatorProcess("--now", iso(run.start + (run.end - run.start) / 2)) as emu:
        yield emu


@pytest.mark.parametrize("via", VIAS)
def test_runs_started_since_equal_truth(emulator, truth, via):
    runs = truth["runs"]
    start = utc(runs[3]["start_time"])  # included
    client = oms(emulator, via)
    got = client.runs_started_since(start)
    expected = started_since(truth, start)
    assert [r.run_number for r in got] == [r["run_number"] for r in expected]
    assert runs[3]["run_number"] in [r.run_number for r in got]
    assert runs[2]["run_number"] not in [r.run_number for r in got]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.end_time == (utc(theirs["end_time"]) if theirs["ended"] else None)
        assert (mine.fill_number, mine.stable_beam) == (theirs["fill_number"],
                                                         theirs["stable_beam"])
        assert mine.components and mine.recorded_lumi is not None


@pytest.mark.parametrize("via", VIAS)
def test_pages_are_followed(emulator, truth, via, monkeypatch):
    monkeypatch.setattr(oms_module, "PAGE_LIMIT", 4)
    client = oms(emulator, via)
    start = utc(truth["runs"][0]["start_time"])
    got = [r.run_number for r in client.runs_started_since(start)]
    assert got == [r["run_number"] for r in started_since(truth, start)]
    assert len(got) > 3 * 4  # several pages
    numbered = client.runs_numbered(got[2], got[13])
    assert [r.run_number for r in numbered] == got[2:14]


@pytest.mark.parametrize("via", VIAS)
def test_an_ongoing_run_is_never_ended(midrun, via):
    truth = midrun.truth()
    ongoing = [r for r in truth["runs"] if not r["ended"] and utc(r["start_time"]) <=
               utc(truth["now"])]
    assert len(ongoing) == 1
    number = ongoing[0]["run_number"]
    client = oms(midrun, via)
    now = utc(truth["now"])
    recent = client.runs_started_since(now - timedelta(days=30))
    assert number in [r.run_number for r in recent]
    assert [r.ended for r in recent if r.run_number == number] == [False]
    (record,) = client.runs_numbered(number, number)
    assert not record.ended and record.recorded_lumi is None


def test_refused_credentials_are_one_line_without_the_secret(emulator):
    settings = OmsSettings.from_connection(connection(emulator, "oms_default"))
    wrong = OmsSettings(settings.api_url, settings.token_url, settings.audience,
                        settings.client_id, "not-the-secret", "direct", True)
    with pytest.raises(ServiceError) as info:
        DirectOms(wrong)
    message = str(info.value)
    assert message == (f"{settings.token_url} refused the client credentials of "
                       f"{settings.client_id!r} for audience 'cmsoms-prod': check login/password"
                       " of oms_default (and its oms-api-access membership)")
    assert "not-the-secret" not in message and settings.client_secret not in message


def test_tokens_shorter_lived_than_omsapis_renewal_window():
    """omsapi renews a token on a 401 only when its last one is 30+ s old; with 2-s tokens
    every query after the first seconds would fail. The client starts a new token store on
    such a 401, so queries go on (what a long conditions task meets when tokens expire)."""
    with EmulatorProcess("--token-ttl", "2") as emu:
        client = oms(emu, "direct")
        first = [r.run_number for r in client.runs_numbered(379412, 379500)]
        time.sleep(3)
        assert [r.run_number for r in client.runs_numbered(379412, 379500)] == first != []


def test_a_token_about_to_end_is_renewed_before_the_query():
    """A query after the token's life is sent once, with a new token, and never meets a 401:
    each try makes one data request, so a burst of transient faults cannot take two
    chances per try (seen as a discover task running out of retries in CI)."""
    with EmulatorProcess("--token-ttl", "3") as emu:
        client = oms(emu, "direct")
        first = [r.run_number for r in client.runs_numbered(379412, 379500)]
        time.sleep(3)
        before = emu.stats()["requests"]
        assert [r.run_number for r in client.runs_numbered(379412, 379500)] == first != []
        after = emu.stats()["requests"]
    grown = {path: n - before.get(path, 0) for path, n in after.items()
             if n != before.get(path, 0) and not path.startswith("/_emulator/")}
    tokens = {p: n for p, n in grown.items() if p.startswith("/auth/")}
    data = {p: n for p, n in grown.items() if p.endswith("/runs")}
    assert list(tokens.values()) == [1] and list(data.values()) == [1], grown
