"""The synthetic world: deterministic, realistic magnitudes, planted realities present."""

from __future__ import annotations

import numpy as np

from dialsflow_emulator.histograms import entries_for, histogram
from dialsflow_emulator.world.basics import ranges
from dialsflow_emulator.world.build import build_world
from dialsflow_emulator.world.profiles import EB_OCCUPANCY


def test_same_seed_same_world_other_seed_other_world():
    a, b, c = build_world("demo", 1).truth(), build_world("demo", 1).truth(), build_world("demo", 2)
    assert a == b
    assert [r["n_ls"] for r in a["runs"]] != [r.n_ls for r in c.runs]


def test_demo_is_a_week_of_a_few_runs_a_day():
    w = build_world("demo", 1)
    days = (w.runs[-1].start - w.runs[0].start).days + 1
    assert 6 <= days <= 8
    assert 2 <= len(w.runs) / days <= 8
    assert all(8 <= r.n_ls <= 160 for r in w.runs if r.stable_beam)
    starts = [r.start for r in w.runs]
    assert starts == sorted(starts)
    assert all(a.end <= b.start for a, b in zip(w.runs, w.runs[1:], strict=False))


def test_bench_has_many_ls_and_large_maps():
    w = build_world("bench", 1)
    assert len(w.runs) >= 60
    assert max(r.n_ls for r in w.runs) == 2400
    assert np.median([r.n_ls for r in w.runs if r.stable_beam]) >= 80
    shapes = {(m.x_bin, m.y_bin) for ms in w.mes_by_workspace.values() for m in ms}
    assert {(100, 0), (72, 26), (360, 170)} <= shapes


def test_planted_realities_exist():
    t = build_world("demo", 1).truth()
    planted = t["planted"]
    assert planted["never_certified_runs"]
    golden = set(t["certification"]["golden_runs"])
    assert not golden & set(map(str, planted["never_certified_runs"]))
    assert len(planted["held_back_in_dials"]) == 2
    causes = {g.get("cause") for g in planted["dials_missing_ls"]}
    assert "COPY_ERROR" in causes and None in causes
    zb = next(d for d in t["datasets"] if d["dataset"].startswith("/ZeroBias/"))
    pending = [r for r, v in zb["runs"].items() if v["in_dbs"] and not v["in_dials"]]
    not_yet_in_dbs = [r for r, v in zb["runs"].items() if not v["in_dbs"]]
    assert pending or not_yet_in_dbs  # ended runs not yet in DIALS at the default clock


def test_dials_never_holds_more_than_dbs():
    w = build_world("demo", 1)
    for d in w.datasets:
        for r in w.runs:
            assert set(w.dials_ls(d.dataset_id, r.number, w.default_now)) <= set(
                w.dbs_ls(d.dataset_id, r.number, w.default_now))


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
