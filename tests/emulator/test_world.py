"""The synthetic world: deterministic, realistic magnitudes and timing, planted realities
present (docs/emulator.md, "The synthetic world", "The world clock", "Planted realities")."""

from __future__ import annotations

import itertools
import re
import statistics
from datetime import timedelta

import numpy as np
import pytest

from dialsflow_emulator.histograms import entries_for, histogram
from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.world.basics import iso, ranges, utc
from dialsflow_emulator.world.build import build_world
from dialsflow_emulator.world.entities import CERT_KIND_PATTERNS, DqmFile
from dialsflow_emulator.world.model import World
from dialsflow_emulator.world.profiles import EB_OCCUPANCY
from tests.emulator.test_dials_api import DialsHttp

ZERO_BIAS, EXPRESS = 15102369, 15102368
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def world() -> World:
    return build_world("demo", 1)


def _file(world: World, file_id: int) -> DqmFile:
    return world.file_by_id[file_id]


# --------------------------------------------------------------------------- shape


def test_same_seed_same_world_other_seed_other_world():
    a, b, c = build_world("demo", 1).truth(), build_world("demo", 1).truth(), build_world("demo", 2)
    assert a == b
    assert [r["n_ls"] for r in a["runs"]] != [r.n_ls for r in c.runs]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_demo_is_a_long_season_of_sparse_short_runs(seed: int):
    w = build_world("demo", seed)
    assert w.runs[0].number == 379412 and w.runs[-1].number <= 380252  # Run2024C
    assert (w.runs[-1].end - w.runs[0].start).days >= 130
    assert 40 <= len(w.runs) <= 75
    assert 35 <= statistics.median(r.n_ls for r in w.runs if r.stable_beam) <= 55
    assert all(8 <= r.n_ls <= 160 for r in w.runs if r.stable_beam)
    assert all(a.end <= b.start for a, b in itertools.pairwise(w.runs))
    gaps = [(b.start - a.end).total_seconds() / 86400 for a, b in itertools.pairwise(w.fills)]
    assert statistics.median(gaps) >= 2
    assert [d.name for d in w.datasets] == ["/StreamExpress/Run2024C-Express-v1/DQMIO",
                                            "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"]
    assert w.default_now == (w.runs[-1].end + DAY).replace(microsecond=0)


def test_build_is_fast():
    import time

    from dialsflow_emulator.world.build import _build_world

    t0 = time.perf_counter()
    _build_world.__wrapped__("demo", 7).truth()
    assert time.perf_counter() - t0 < 1.0


def test_bench_has_many_ls_and_large_maps():
    w = build_world("bench", 1)
    assert len(w.runs) >= 60
    assert max(r.n_ls for r in w.runs) == 2400
    assert np.median([r.n_ls for r in w.runs if r.stable_beam]) >= 80
    shapes = {(m.x_bin, m.y_bin) for ms in w.mes_by_workspace.values() for m in ms}
    assert {(100, 0), (72, 26), (360, 170)} <= shapes
    t = w.truth()
    assert t["planted"]["stuck_files"] and t["planted"]["parsing_error_files"]
    assert t["certification"]["golden_releases"]  # the same certification model


def test_special_energy_runs_open_and_close_the_season(world: World):
    """A 900 GeV fill first, a 5.36 TeV pp-reference fill last; Express only, never Golden."""
    energies = [f.energy for f in world.fills]
    assert energies[0] == 450 and energies[-1] == 2680 and set(energies[1:-1]) == {6800}
    special = [r for r in world.runs if r.stable_beam and r.energy != 6800]
    assert {r.energy for r in special} == {450, 2680}
    zb = {f.run for f in world.files if f.dataset_id == ZERO_BIAS}
    ex = {f.run for f in world.files if f.dataset_id == EXPRESS}
    assert all(r.number in ex and r.number not in zb for r in special)
    golden = {int(n) for c in world.cert_files if c.kind == "golden" for n in c.content}
    assert golden.isdisjoint(r.number for r in special)
    never = world.truth()["planted"]["never_certified_runs"]
    assert {r.number for r in special} <= set(never)


# --------------------------------------------------------------------------- certification


def test_golden_certification_comes_weeks_to_months_late(world: World):
    t = world.truth()
    ends = {r.number: r.end for r in world.runs}
    certified = [r for r in t["runs"] if r["certified_at"]]
    assert certified
    delays = {r["run_number"]: utc(r["certified_at"]) - ends[r["run_number"]]
              for r in certified}
    assert min(delays.values()) >= timedelta(days=21)
    late = t["planted"]["late_certified_runs"]
    assert len(late) >= 3
    assert late == sorted(n for n, d in delays.items() if d >= timedelta(days=60))
    assert max(delays.values()) <= timedelta(days=130)


def test_golden_releases_are_cumulative_and_superseded_into_out_to_date(world: World):
    t = world.truth()
    releases = t["certification"]["golden_releases"]
    times = [utc(r["published_at"]) for r in releases]
    start = world.runs[0].start
    assert timedelta(days=30) <= times[0] - start <= timedelta(days=45)  # ~5 weeks in
    assert all(timedelta(days=21) <= b - a <= timedelta(days=75)
               for a, b in itertools.pairwise(times))
    assert times[-1] >= world.runs[-1].end + timedelta(days=60)  # well after the season
    pattern = CERT_KIND_PATTERNS["golden"]
    lasts = [int(pattern.match(r["path"].rsplit("/", 1)[1])[3]) for r in releases]
    assert lasts == sorted(set(lasts))  # each names a newer last run
    for before, after in itertools.pairwise(releases):
        assert before["moved_at"] == after["published_at"]
    assert releases[-1]["moved_at"] is None
    by_path = {f["path"]: f for f in t["certification"]["files"]}
    for r in releases[:-1]:
        name = r["path"].rsplit("/", 1)[1]
        assert by_path[r["path"]]["moved_to"] == f"Collisions24/outToDate/{name}"
    # the runs: each enters with its first release, bad and special runs never
    for run in t["runs"]:
        holding = [r for r in releases if run["run_number"] in r["runs"]]
        if not holding:
            assert run["certified_at"] is None
            continue
        assert run["golden_first"] == holding[0]["path"]
        assert run["certified_at"] == holding[0]["published_at"]
    never = set(t["planted"]["never_certified_runs"])
    assert never.isdisjoint(n for r in releases for n in r["runs"])
    # the newest release certifies every good 13.6 TeV run but the decertified one
    good = {r.number for r in world.runs if r.pp} - set(world.bad_runs)
    assert set(releases[-1]["runs"]) == good - set(t["planted"]["decertified_runs"])


def test_one_run_is_decertified_by_the_release_after_its_first(world: World):
    t = world.truth()
    (run,) = t["planted"]["decertified_runs"]
    releases = t["certification"]["golden_releases"]
    holding = [i for i, r in enumerate(releases) if run in r["runs"]]
    assert len(holding) == 1 and holding[0] < len(releases) - 1
    info = next(r for r in t["runs"] if r["run_number"] == run)
    assert info["decertified_at"] == releases[holding[0] + 1]["published_at"]
    muon = [c for c in world.cert_files if c.kind == "muon"]
    assert str(run) in muon[holding[0]].content and str(run) not in muon[-1].content


def test_some_runs_are_certified_in_part(world: World):
    last = next(c for c in reversed(world.cert_files) if c.kind == "golden")
    assert any(len(v) > 1 for v in last.content.values())


def test_default_clock_shows_a_season_waiting_for_golden(world: World):
    t = world.truth()
    golden = t["certification"]["golden_runs"]
    ended_good = [r for r in t["runs"] if r["ended"] and r["stable_beam"] and r["energy"] == 6800
                  and not r["bad"]]
    assert 0 < len(golden) < len(ended_good) / 2
    assert t["certification"]["latest"]["golden"] == t["certification"]["golden_latest"]


def test_daily_dcs_series_have_gaps_and_end_with_the_pp_reference(world: World):
    dcs = [c for c in world.cert_files if c.kind == "dcs"]
    assert all(c.published_at.strftime("%H:%M") in ("19:31", "19:32") for c in dcs)
    pp = [c for c in dcs if "_13p6TeV_" in c.path]
    assert all(c.published_at.strftime("%H:%M") == "19:31" for c in pp)
    days = [c.published_at.date() for c in pp]
    assert len(days) == len(set(days))
    gaps = [(b - a).days for a, b in itertools.pairwise(days)]
    assert max(gaps) >= 6  # several days without a new file
    series = {re.match(r"Collisions24(?:Special)?_([^_]+)_", c.name)[1] for c in dcs}
    assert series == {"900GeV", "13p6TeV", "5p36TeV"}
    assert "_5p36TeV_" in max(dcs, key=lambda c: c.published_at).path
    end = max(c.published_at for c in world.cert_files) + DAY
    assert "_5p36TeV_" in world.latest_cert("dcs", end).path
    latest = [c for c in world.cert_files if c.kind == "dcs-latest"]
    for c in latest:  # the Latest file repeats its series' newest file
        newest = max((d for d in dcs if d.name.startswith(c.name.rsplit("_", 1)[0] + "_")
                      and d.published_at <= c.published_at), key=lambda d: d.published_at)
        assert newest.content == c.content and not CERT_KIND_PATTERNS["dcs"].match(c.name)


# --------------------------------------------------------------------------- DIALS ingestion


def test_dials_indexes_files_at_the_next_hourly_run(world: World):
    extra = 0
    for f in world.files:
        assert f.registered_at < f.indexed_at < f.ingest_started_at <= f.rows_done_at
        assert 60 <= f.indexed_at.minute * 60 + f.indexed_at.second <= 300
        waited = f.indexed_at - f.registered_at
        assert waited <= timedelta(hours=6)
        extra += waited > timedelta(hours=1, minutes=5)
        assert f.dials_status(f.indexed_at - timedelta(seconds=1)) is None
        assert f.dials_status(f.indexed_at) == "PENDING"
    assert 0 < extra < len(world.files) / 3  # a later indexer run now and then


def test_rows_appear_progressively_while_started(world: World):
    f = next(f for f in world.files if f.final_status == "FINISHED" and f.n_ls >= 20
             and f.dataset_id == ZERO_BIAS and (ZERO_BIAS, f.run) not in world.missing_ls)
    span = f.rows_done_at - f.ingest_started_at
    counts = []
    for share in (0.0, 0.25, 0.5, 0.75):
        now = f.ingest_started_at + span * share
        assert f.dials_status(now) == "STARTED"
        counts.append(len(f.rows_ls(now)))
        assert list(f.rows_ls(now)) == list(range(f.first_ls, f.first_ls + counts[-1]))
        assert set(f.rows_ls(now)) <= set(world.dials_ls(ZERO_BIAS, f.run, now))
    assert counts == sorted(counts) and counts[0] == 0 and 0 < counts[2] < f.n_ls
    assert f.dials_status(f.rows_done_at) == "STARTED"  # the ML models still run
    assert len(f.rows_ls(f.rows_done_at)) == f.n_ls
    assert f.ingested_at is not None and f.dials_status(f.ingested_at) == "FINISHED"


def test_stuck_and_parsing_error_files_keep_partial_rows(world: World):
    t = world.truth()
    (stuck,) = t["planted"]["stuck_files"]
    (broken,) = t["planted"]["parsing_error_files"]
    far = world.default_now + timedelta(days=400)
    for planted, status in ((stuck, "STARTED"), (broken, "PARSING_ERROR")):
        f = _file(world, planted["file_id"])
        assert f.dataset_id == ZERO_BIAS and f.dials_status(far) == status
        first, last = planted["rows_ls"]
        assert first == f.first_ls and f.first_ls <= last < f.last_ls
        assert list(f.rows_ls(far)) == list(range(first, last + 1))
        assert list(f.rows_ls(world.default_now)) == list(range(first, last + 1))
    run = next(r for r in world.runs if r.number == stuck["run"])
    assert run.stable_beam and run.energy == 6800
    assert run.end < world.runs[0].start + (world.runs[-1].end - world.runs[0].start) / 2
    info = next(r for r in t["runs"] if r["run_number"] == stuck["run"])
    assert info["certified_at"] and not info["decertified_at"]
    zb = next(d for d in t["datasets"] if d["dataset_id"] == ZERO_BIAS)["runs"]
    assert not zb[str(stuck["run"])]["dials_complete"]
    assert zb[str(stuck["run"])]["dials_ingested_at"] is None
    assert zb[str(broken["run"])]["dials_complete"]  # failed for good: settled
    causes = {(p["run"], p.get("cause")) for p in t["planted"]["dials_missing_ls"]}
    assert {(stuck["run"], "STARTED"), (broken["run"], "PARSING_ERROR")} <= causes


def test_planted_realities_exist(world: World):
    t = world.truth()
    planted = t["planted"]
    assert planted["never_certified_runs"]
    golden = set(t["certification"]["golden_runs"])
    assert not golden & set(map(str, planted["never_certified_runs"]))
    assert len(planted["held_back_in_dials"]) == 2
    causes = {g.get("cause") for g in planted["dials_missing_ls"]}
    assert {"COPY_ERROR", "PARSING_ERROR", "STARTED", None} <= causes
    assert len(planted["invalid_files"]) == 2
    zb = next(d for d in t["datasets"] if d["dataset"].startswith("/ZeroBias/"))
    pending = [r for r, v in zb["runs"].items() if v["in_dbs"] and not v["in_dials"]]
    assert pending  # a held-back run is in DBS, not yet in DIALS, at the default clock
    assert set(map(int, pending)) & set(planted["held_back_in_dials"])


def test_invalidated_files_leave_the_valid_only_view(world: World):
    for planted in world.truth()["planted"]["invalid_files"]:
        f = _file(world, planted["file_id"])
        at = utc(planted["invalidated_at"])
        assert f.ingested_at is not None and at > f.ingested_at  # DIALS had it by then
        assert f.valid(at - timedelta(seconds=1)) and not f.valid(at)
        assert set(f.ls_numbers) <= set(world.dbs_ls(f.dataset_id, f.run, at))
        assert set(f.ls_numbers).isdisjoint(world.dbs_ls(f.dataset_id, f.run, at, True))
        assert set(world.dbs_ls(f.dataset_id, f.run, at, True))  # other files stay
        assert set(f.ls_numbers) <= set(world.dials_ls(f.dataset_id, f.run, at))


@pytest.mark.parametrize("shift", [-60, -20, -3, 0, 40])
def test_dials_never_holds_more_than_dbs(world: World, shift: int):
    now = world.default_now + timedelta(days=shift)
    for d in world.datasets:
        for r in world.runs:
            assert set(world.dials_ls(d.dataset_id, r.number, now)) <= set(
                world.dbs_ls(d.dataset_id, r.number, now))


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture(scope="module")
def dials(emulator: EmulatorProcess) -> DialsHttp:
    return DialsHttp(emulator)


def test_dials_serves_a_partly_ingested_file(dials: DialsHttp, world: World):
    """Mid-ingestion, file-index says STARTED and run/, lumisection/ and th1/ hold the
    rows inserted so far."""
    f = next(f for f in world.files if f.final_status == "FINISHED" and f.n_ls >= 20
             and f.dataset_id == ZERO_BIAS and len(world.files_of(ZERO_BIAS, f.run)) == 1
             and (ZERO_BIAS, f.run) not in world.missing_ls)
    now = f.ingest_started_at + (f.rows_done_at - f.ingest_started_at) / 2
    clock = {"X-Emulator-Now": iso(now)}
    partial = list(f.rows_ls(utc(iso(now))))
    assert 0 < len(partial) < f.n_ls
    (row,) = dials.json("file-index/", {"dataset_id": ZERO_BIAS, "logical_file_name": f.lfn},
                        clock)["results"]
    assert row["status"] == "STARTED"
    (run,) = dials.json("run/", {"dataset_id": ZERO_BIAS, "run_number": f.run}, clock)["results"]
    assert run["ls_count"] == len(partial)
    lumis = dials.rows("lumisection/", {"dataset_id": ZERO_BIAS, "run_number": f.run,
                                        "page_size": 500}, clock)
    assert [r["ls_number"] for r in lumis] == partial
    th1 = dials.rows("th1/", {"dataset_id": ZERO_BIAS, "run_number": f.run, "me_id": 5,
                              "fields": "ls_number", "page_size": 500}, clock)
    assert [r["ls_number"] for r in th1] == partial


def test_dials_shows_the_stuck_and_parsing_error_files(dials: DialsHttp, truth: dict):
    for planted, status in ((truth["planted"]["stuck_files"][0], "STARTED"),
                            (truth["planted"]["parsing_error_files"][0], "PARSING_ERROR")):
        (row,) = dials.json("file-index/", {"dataset_id": ZERO_BIAS,
                                            "logical_file_name": planted["lfn"]})["results"]
        assert row["status"] == status
        assert bool(row["err_trace"]) is (status == "PARSING_ERROR")
        first, last = planted["rows_ls"]
        lumis = dials.rows("lumisection/", {"dataset_id": ZERO_BIAS, "run_number": planted["run"],
                                            "ls_number__gte": planted["ls"][0],
                                            "ls_number__lte": planted["ls"][1],
                                            "page_size": 500})
        assert [r["ls_number"] for r in lumis] == list(range(first, last + 1))
    rows = dials.rows("file-index/", {"status": "PARSING_ERROR"})
    assert [r["file_id"] for r in rows] == [p["file_id"]
                                            for p in truth["planted"]["parsing_error_files"]]


def test_dials_indexes_the_invalidated_files(dials: DialsHttp, truth: dict):
    """DIALS' file indexer asks DBS without validFileOnly, so it lists is_file_valid=0 files
    and keeps their rows (docs/reference/dials.md §2.2)."""
    for planted in truth["planted"]["invalid_files"]:
        (row,) = dials.json("file-index/", {"dataset_id": planted["dataset_id"],
                                            "logical_file_name": planted["lfn"]})["results"]
        assert row["status"] == "FINISHED"


# --------------------------------------------------------------------------- histograms


def test_histograms_are_deterministic_and_shaped_like_dials_rows():
    h1 = histogram(1, 15102369, 379412, 7, EB_OCCUPANCY)
    assert h1.shape == (170, 360)
    assert np.array_equal(h1, histogram(1, 15102369, 379412, 7, EB_OCCUPANCY))
    assert not np.array_equal(h1, histogram(1, 15102369, 379412, 8, EB_OCCUPANCY))
    entries = entries_for(1, 15102369, 379412, 7, EB_OCCUPANCY)
    assert 0 < h1.sum() <= entries


def test_ranges_compress_ls_lists():
    assert ranges([1, 2, 3, 7, 9, 10]) == [[1, 3], [7, 7], [9, 10]]
    assert ranges([]) == []
