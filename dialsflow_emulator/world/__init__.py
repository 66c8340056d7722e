"""A deterministic synthetic CMS world: fills, runs, DQMIO datasets, files, MEs, certification.

Everything the emulated services answer is derived from one `World`, built from a profile
and a seed. Time matters: each service shows what it would show at the emulator's "now"
(OMS shows a run once it started, DBS a file once it is registered, DIALS a file once its
hourly indexer listed it and its rows as they are inserted, CAF a JSON once it is published
and where it is then). Magnitudes follow docs/reference/dials.md §5 and
docs/reference/dbs_caf.md A3; timing and the planted realities are described, with their
sources, in docs/emulator.md.

Planted realities later features must handle:
- runs that are never certified (no stable beams, flagged bad, special energies), runs
  certified only in part (LS ranges), runs certified weeks to months after they ended, and
  one run decertified by the release after its first;
- runs that ended but are not in DIALS yet (PromptReco waits ~48 h, DIALS' indexer runs
  hourly; two runs are held back for days);
- runs in DIALS with lumisections missing compared to DBS (a file whose ingestion failed
  with COPY_ERROR, one with PARSING_ERROR after part of its rows, one STARTED for ever, and
  single LS without per-LS data), and files DBS invalidated after DIALS ingested them;
- CAF traps: superseded files in outToDate/, era and Latest files, a newest DCS-only file
  of another energy, a lower-case pp-reference golden file published last.

Modules: basics (timestamps, hashes, ranges), entities (the frozen values), profiles (demo,
bench), model (the World and its views at a clock), build (generation). Import a name from
the module that defines it; the package itself offers what a test needs to build a world
and read its times.
"""

from .basics import iso, utc
from .build import build_world

__all__ = ["build_world", "iso", "utc"]
