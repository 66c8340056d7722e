"""A deterministic synthetic CMS world: fills, runs, DQMIO datasets, files, MEs, certification.

Everything the emulated services answer is derived from one `World`, built from a profile
and a seed. Time matters: each service shows what it would show at the emulator's "now"
(OMS shows a run once it started, DBS a file once it is registered, DIALS a file once it is
ingested, CAF a JSON once it is published). Magnitudes follow
docs/reference/dials.md §5 and docs/reference/dbs_caf.md A3.

Planted realities later features must handle:
- runs that are never certified (no stable beams, or flagged bad), and runs certified
  only in part (LS ranges);
- runs that ended but are not in DIALS yet (PromptReco waits ~48 h, DIALS ingestion lags
  further; a few runs are held back for days);
- runs in DIALS with lumisections missing compared to DBS (a DQMIO file whose ingestion
  failed with COPY_ERROR, and single LS without per-LS data).

Modules: basics (timestamps, hashes, ranges), entities (the frozen values), profiles (demo,
bench), model (the World and its views at a clock), build (generation). Import a name from
the module that defines it; the package itself offers what a test needs to build a world
and read its times.
"""

from .basics import iso, utc
from .build import build_world

__all__ = ["build_world", "iso", "utc"]
