"""What production OMS lacks per lumisection: LS rows missing outright and null cells.

Real `lumisections` answers skip some LS of a run (pixelae `tools/omstools.py`: run 380147
LS 186 is absent) and carry nulls, above all in a run's first LS (cms-DQM/runregistry
`test/lumisection_example.js`); docs/emulator.md "OMS per-LS gaps and nulls". Picks hash the
seed and the run number (no draw from the world's random stream, so nothing else moves).

Both fall only on LS outside the run's DCS-only ranges: the DCS-only JSON is made from OMS'
per-LS DCS record and the Golden JSON needs luminosity too, so an LS OMS has no row, no DCS
bits or no luminosity for is never certified (docs/reference/dbs_caf.md). Certified LS always
come with their conditions; the maps of uncertified LS may not.
"""

from __future__ import annotations

from .basics import stable_int
from .entities import Run, RunCertification

#: null kinds: "lumi" = pileup and the per-LS luminosities not yet filled (a run's first LS);
#: "dcs" = no DCS record for the LS, every `*_ready` bit null.
LUMI, DCS = "lumi", "dcs"


def _uncertifiable(run: Run, dcs: dict[int, list[list[int]]]) -> list[int]:
    """LS of a run outside its DCS-only ranges (all of them for runs without stable beams)."""
    inside = {ls for lo, hi in dcs.get(run.number, []) for ls in range(lo, hi + 1)}
    return [ls for ls in range(1, run.n_ls + 1) if ls not in inside]


def oms_missing_ls(runs: list[Run], run_cert: dict[int, RunCertification],
                   dcs: dict[int, list[list[int]]], seed: int) -> dict[int, frozenset[int]]:
    """Runs whose `lumisections` (and per-LS rates) lack LS inside the run, outside its DCS
    ranges (the LS before DCS turned ready at the start).

    About one collision run in three that has such LS beyond the first, by hash, plus the
    first of them in the season's first Golden release, so a nightly ingestion of Golden runs
    meets maps of LS OMS has no row for. The first and last LS stay (a run's start and
    `last_lumisection_in_run` are still served).
    """
    kept = sorted((c.certified_at, c.run) for c in run_cert.values()
                  if c.certified_at and c.dropped_at is None)
    by_number = {r.number: r for r in runs}
    first = next((run for _, run in kept
                  if [ls for ls in _uncertifiable(by_number[run], dcs)
                      if 1 < ls < by_number[run].n_ls]), None)
    out: dict[int, frozenset[int]] = {}
    for r in runs:
        if not (r.pp and r.stable_beam and r.n_ls >= 12):
            continue
        if r.number != first and stable_int("oms-gap", seed, r.number) % 3:
            continue
        candidates = [ls for ls in _uncertifiable(r, dcs) if 1 < ls < r.n_ls]
        if candidates:
            out[r.number] = frozenset(candidates)
    return out


def oms_null_ls(runs: list[Run], missing: dict[int, frozenset[int]],
                dcs: dict[int, list[list[int]]], seed: int) -> dict[int, dict[int, str]]:
    """Per run, {LS: null kind}: the first LS of one run in three without luminosity and
    pileup; one LS of one collision run in eight without its DCS bits; outside the run's DCS
    ranges either way."""
    out: dict[int, dict[int, str]] = {}
    for r in runs:
        cells: dict[int, str] = {}
        free = [ls for ls in _uncertifiable(r, dcs) if ls not in missing.get(r.number, ())]
        if 1 in free and stable_int("oms-null-lumi", seed, r.number) % 3 == 0:
            cells[1] = LUMI
        spare = [ls for ls in free if ls not in cells]
        if r.pp and spare and stable_int("oms-null-dcs", seed, r.number) % 8 == 0:
            cells[spare[stable_int("oms-null-dcs-ls", seed, r.number) % len(spare)]] = DCS
        if cells:
            out[r.number] = cells
    return out
