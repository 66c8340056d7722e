"""A job's OMS filters on real OMS answers: every rejected run with its reason."""

from __future__ import annotations

from dialsflow.config.jobs import OmsFilters
from dialsflow.pipeline.run_filters import split_by_filters
from dialsflow_emulator.world import utc

from ...clients import oms


def test_filters_say_why(emulator, truth):
    runs = [r for r in oms(emulator, "direct").runs_started_since(
        utc(truth["runs"][0]["start_time"])) if r.ended]
    kept, rejected = split_by_filters(runs, OmsFilters(stable_beam=True))
    unstable = {r["run_number"] for r in truth["runs"] if not r["stable_beam"]}
    assert {r.run_number for r, _ in rejected} == unstable
    assert {why for _, why in rejected} == {"no stable beams (OMS stable_beam false)"}
    lumis = sorted(r.recorded_lumi for r in kept)
    cut = lumis[len(lumis) // 2]
    kept2, rejected2 = split_by_filters(kept, OmsFilters(min_recorded_lumi=cut))
    assert all(r.recorded_lumi >= cut for r in kept2) and len(kept2) == len(lumis) - len(
        lumis) // 2
    assert all("below" in why for _, why in rejected2)
    kept3, rejected3 = split_by_filters(kept, OmsFilters(components=("PIXEL", "CASTOR")))
    assert not kept3 and {why for _, why in rejected3} == {"components not in the run: CASTOR"}
    assert split_by_filters(kept, OmsFilters(components=("PIXEL", "TRACKER")))[0] == kept
