"""A deterministic synthetic CMS world: fills, runs, DQMIO datasets, files, MEs, certification.

Everything the emulated services answer is derived from one `World`, built from a profile
and a seed. Time matters: each service shows what it would show at the emulator's "now"
(OMS shows a run once it started, DBS a file once it is registered, DIALS a file once it is
ingested, CAF a JSON once it is published). Magnitudes follow
shared/reference/dials_api.md §5 and das_caf_api.md A3.

Planted realities later features must handle:
- runs that are never certified (no stable beams, or flagged bad), and runs certified
  only in part (LS ranges);
- runs that ended but are not in DIALS yet (PromptReco waits ~48 h, DIALS ingestion lags
  further; a few runs are held back for days);
- runs in DIALS with lumisections missing compared to DBS (a DQMIO file whose ingestion
  failed with COPY_ERROR, and single LS without per-LS data).

Modules: basics (timestamps, hashes, ranges), entities (the frozen values), profiles (demo,
bench), model (the World and its views at a clock), build (generation). This package is
the vocabulary of every twin, so its public names are importable from here.
"""

from .basics import LS_SECONDS, iso, ranges, stable_int, utc
from .build import build_world
from .entities import (
    CERT_KIND_PATTERNS,
    DEFAULT_WORKSPACE,
    WORKSPACE_NAMES,
    WORLD_KINDS,
    CertFile,
    Dataset,
    DqmFile,
    Fill,
    MlModel,
    MonitorElement,
    Run,
)
from .model import World
from .profiles import EB_OCCUPANCY, ECAL_MES, PROFILES, Profile

__all__ = [
    "CERT_KIND_PATTERNS", "DEFAULT_WORKSPACE", "EB_OCCUPANCY", "ECAL_MES", "LS_SECONDS",
    "PROFILES", "WORKSPACE_NAMES", "WORLD_KINDS", "CertFile", "Dataset", "DqmFile", "Fill",
    "MlModel", "MonitorElement", "Profile", "Run", "World", "build_world", "iso", "ranges",
    "stable_int", "utc",
]
