"""DIALS' `runregistry/editable-datasets/` over HTTP: Run Registry's global states of the
PromptReco datasets follow the world's certification timing (docs/emulator.md, "The world
clock": a run is decided 3 weeks to 3 months after it ended and enters the next cumulative
Golden release), not a fixed delay before the newest Golden JSON."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.world.basics import iso, utc
from dialsflow_emulator.world.build import build_world
from dialsflow_emulator.world.model import World

from .test_dials_api import ZERO_BIAS, DialsHttp, dataset_truth

PATH = "runregistry/editable-datasets/"
RR_DATASET = "/PromptReco/Collisions2024/DQM"
STATES = ("waiting dqm gui", "OPEN", "COMPLETED")
SECOND = timedelta(seconds=1)


@pytest.fixture(scope="module")
def dials(emulator: EmulatorProcess) -> DialsHttp:
    return DialsHttp(emulator)


@pytest.fixture(scope="module")
def world() -> World:
    """The emulator's world (demo, seed 1), for the decision times the truth does not list."""
    return build_world("demo", 1)


def rr(dials: DialsHttp, truth: dict, state: str, now: datetime | None = None,
       class_name: str | None = None) -> list[int]:
    headers = {"X-Emulator-Now": iso(now)} if now else None
    return dials.json(PATH, {"class_name": class_name or truth["cert_class"],
                             "dataset_name": RR_DATASET, "global_state": state}, headers)


def pp_runs(truth: dict) -> list[dict]:
    """13.6 TeV collision runs: the ones with a PromptReco dataset in Run Registry."""
    return [r for r in truth["runs"] if r["stable_beam"] and r["energy"] == 6800]


def golden_releases(truth: dict) -> list[tuple[datetime, set[int]]]:
    return [(utc(g["published_at"]), set(g["runs"]))
            for g in truth["certification"]["golden_releases"]]


def test_every_golden_release_holds_exactly_the_good_completed_runs(dials: DialsHttp,
                                                                     truth: dict) -> None:
    """At each release's publication the DC experts' COMPLETED runs, minus the bad ones and the
    decertified one once it is dropped, are what the release certifies; a run entering it was
    OPEN until it was decided, weeks after it ended (not days before the release)."""
    bad = {r["run_number"] for r in truth["runs"] if r["bad"]}
    dropped = {r["run_number"]: utc(r["decertified_at"]) for r in truth["runs"]
               if r["decertified_at"]}
    releases = golden_releases(truth)
    assert len(releases) >= 3
    for published, runs in releases:
        completed = rr(dials, truth, "COMPLETED", published)
        assert completed == sorted(set(completed)), published
        gone = {n for n, at in dropped.items() if at <= published}
        assert runs == set(completed) - bad - gone, published
        assert not runs & set(rr(dials, truth, "OPEN", published))
    # Runs that ended more than 4 days before a release but are not in it are still OPEN.
    published, runs = releases[1]
    ended = {r["run_number"] for r in pp_runs(truth)
             if utc(r["end_time"]) <= published - timedelta(days=4)}
    waiting = ended - runs - bad
    assert waiting
    assert waiting <= set(rr(dials, truth, "OPEN", published))


def test_states_follow_each_runs_decision_time(dials: DialsHttp, truth: dict,
                                               world: World) -> None:
    """COMPLETED from the run's certification decision (`ready_at`) on, OPEN from its PromptReco
    DQMIO in DBS (the DQM GUI) until then, `waiting dqm gui` between its end and that."""
    releases = golden_releases(truth)
    registered = {int(n): utc(v["dbs_registered_at"])
                  for n, v in dataset_truth(truth, ZERO_BIAS)["runs"].items()}
    clocks = [None, releases[0][0] - timedelta(days=3),
              releases[-1][0] + timedelta(days=30)]
    for now in clocks:
        at = now or utc(truth["default_now"])
        expected: dict[str, list[int]] = {s: [] for s in STATES}
        for r in pp_runs(truth):
            n = r["run_number"]
            if utc(r["end_time"]) > at:
                continue
            state = ("COMPLETED" if world.run_certification[n].ready_at <= at else
                     "OPEN" if registered[n] <= at else "waiting dqm gui")
            expected[state].append(n)
        got = {s: rr(dials, truth, s, now) for s in STATES}
        assert got == expected, at
    # At the default clock much of the season is decided but not yet in a Golden JSON, and
    # the newest runs still wait; a month after the last release everything is COMPLETED.
    latest = set(truth["certification"]["golden_runs"])
    completed = rr(dials, truth, "COMPLETED")
    assert {str(n) for n in completed} - latest and rr(dials, truth, "OPEN")
    assert rr(dials, truth, "OPEN", clocks[-1]) == []
    assert rr(dials, truth, "COMPLETED", clocks[-1]) == [r["run_number"] for r in pp_runs(truth)]


def test_one_run_moves_through_the_states(dials: DialsHttp, truth: dict, world: World) -> None:
    registered = {int(n): utc(v["dbs_registered_at"])
                  for n, v in dataset_truth(truth, ZERO_BIAS)["runs"].items()}
    run = next(r for r in pp_runs(truth) if not r["bad"] and r["certified_at"])
    n, ready = run["run_number"], world.run_certification[run["run_number"]].ready_at
    end = utc(run["end_time"])  # printed to the second, the run ends within it
    steps = [(end - SECOND, None), (end + SECOND, "waiting dqm gui"),
             (registered[n] - SECOND, "waiting dqm gui"), (registered[n], "OPEN"),
             (ready - SECOND, "OPEN"), (ready, "COMPLETED"),
             (utc(run["certified_at"]), "COMPLETED")]
    assert ready - end >= timedelta(days=21)
    assert utc(run["certified_at"]) >= ready
    for now, state in steps:
        holding = [s for s in STATES if n in rr(dials, truth, s, now)]
        assert holding == ([state] if state else []), (iso(now), state)


def test_other_classes_and_states_are_empty(dials: DialsHttp, truth: dict) -> None:
    assert rr(dials, truth, "OPEN", class_name="Cosmics24") == []
    assert rr(dials, truth, "SIGNOFF") == []
    assert rr(dials, truth, "BOGUS") == []
    r = dials.get(PATH, {"class_name": truth["cert_class"], "global_state": "OPEN"})
    assert r.status_code == 400 and r.json() == {"dataset_name": ["This field is required."]}
