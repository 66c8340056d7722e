"""What production OMS lacks per lumisection: LS rows missing outright and null cells.

Real `lumisections` answers skip some LS of a run (pixelae `tools/omstools.py`: run 380147
LS 186 is absent) and carry nulls, above all in a run's first LS (cms-DQM/runregistry
`test/lumisection_example.js`); docs/emulator.md "OMS per-LS gaps and nulls". Picks hash the
seed and the run number (no draw from the world's random stream, so nothing else moves).
"""

from __future__ import annotations

from .basics import stable_int
from .entities import Run, RunCertification

#: null kinds: "lumi" = pileup and the per-LS luminosities not yet filled (a run's first LS);
#: "dcs" = no DCS record for the LS, every `*_ready` bit null.
LUMI, DCS = "lumi", "dcs"


def oms_missing_ls(runs: list[Run], run_cert: dict[int, RunCertification],
                   seed: int) -> dict[int, frozenset[int]]:
    """Runs whose `lumisections` (and per-LS rates) lack a stretch of 1-3 LS inside the run.

    About one collision run in ten by hash, plus the first run of the season's first Golden
    release, so a nightly ingestion of Golden runs meets maps of LS OMS has no row for. The
    first and last LS stay (a run's start and `last_lumisection_in_run` are still served).
    """
    kept = [c for c in run_cert.values() if c.certified_at and c.dropped_at is None]
    first = min(kept, key=lambda c: (c.certified_at, c.run)).run if kept else None
    out: dict[int, frozenset[int]] = {}
    for r in runs:
        if not (r.pp and r.stable_beam and r.n_ls >= 12):
            continue
        if r.number != first and stable_int("oms-gap", seed, r.number) % 10:
            continue
        length = 1 + stable_int("oms-gap-length", seed, r.number) % 3
        start = 2 + stable_int("oms-gap-start", seed, r.number) % (r.n_ls - length - 2)
        out[r.number] = frozenset(range(start, start + length))
    return out


def oms_null_ls(runs: list[Run], missing: dict[int, frozenset[int]],
                seed: int) -> dict[int, dict[int, str]]:
    """Per run, {LS: null kind}: the first LS of one run in three without luminosity and
    pileup; one LS inside one collision run in eight without its DCS bits."""
    out: dict[int, dict[int, str]] = {}
    for r in runs:
        cells: dict[int, str] = {}
        if stable_int("oms-null-lumi", seed, r.number) % 3 == 0:
            cells[1] = LUMI
        if r.pp and r.n_ls >= 10 and stable_int("oms-null-dcs", seed, r.number) % 8 == 0:
            ls = 2 + stable_int("oms-null-dcs-ls", seed, r.number) % (r.n_ls - 2)
            if ls not in missing.get(r.number, ()):
                cells[ls] = DCS
        if cells:
            out[r.number] = cells
    return out
