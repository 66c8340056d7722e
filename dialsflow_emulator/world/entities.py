"""What the world is made of: MEs, fills, runs, datasets, DQMIO files, certification
JSONs and ML models (frozen values; the World holds them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from .basics import LS_SECONDS


@dataclass(frozen=True)
class MonitorElement:
    """A per-lumisection histogram as DIALS stores it (bins 1..n, no under/overflow)."""

    me_id: int
    name: str
    dim: int
    x_bin: int
    x_min: float
    x_max: float
    y_bin: int = 0
    y_min: float = 0.0
    y_max: float = 0.0
    shape: str = "landau"  # how histogram values are generated, see histograms.py
    mean_entries: float = 5e4

    @property
    def bins(self) -> int:
        return self.x_bin * (self.y_bin or 1)


#: File-name rules of DIALS' CAF client (docs/reference/dbs_caf.md B1), prefix-anchored like
#: re.match.
CERT_KIND_PATTERNS = {
    "golden": re.compile(r"Cert_Collisions(.*)_(\d{6})_(\d{6})_Golden\.json"),
    "muon": re.compile(r"Cert_Collisions(.*)_(\d{6})_(\d{6})_Muon\.json"),
    "dcs": re.compile(r"Collisions(.*)_(.*)_(\d{6})_(\d{6})_DCSOnly_TkPx\.json"),
}

WORLD_KINDS = tuple(CERT_KIND_PATTERNS)

#: Every workspace DIALS production is configured with (docs/reference/dials.md §1, §4).
WORKSPACE_NAMES = ("csc", "ecal", "egamma", "hcal", "jetmet", "muon_staging", "tracker")
DEFAULT_WORKSPACE = "tracker"


@dataclass(frozen=True)
class Fill:
    number: int
    start: datetime
    end: datetime
    stable_start: datetime | None
    stable_end: datetime | None
    bunches: int


@dataclass(frozen=True)
class Run:
    number: int
    fill: int
    start: datetime
    n_ls: int
    stable_beam: bool
    pileup: float
    era: str = "Run2024C"

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.n_ls * LS_SECONDS)

    def ls_start(self, ls: int) -> datetime:
        return self.start + timedelta(seconds=(ls - 1) * LS_SECONDS)


@dataclass(frozen=True)
class DqmFile:
    """One DQMIO file: a contiguous LS range of one run of one dataset."""

    file_id: int
    dataset_id: int
    run: int
    first_ls: int
    last_ls: int
    lfn: str
    size: int
    block_name: str
    registered_at: datetime  # visible in DBS from then on
    ingest_started_at: datetime  # DIALS file-index: PENDING -> STARTED
    ingested_at: datetime  # DIALS file-index: FINISHED (or final_status)
    final_status: str = "FINISHED"  # COPY_ERROR plants a gap DIALS never fills
    err_trace: str | None = None

    @property
    def ls_numbers(self) -> range:
        return range(self.first_ls, self.last_ls + 1)

    def dials_status(self, now: datetime) -> str | None:
        if now < self.registered_at:
            return None
        if now < self.ingest_started_at:
            return "PENDING"
        if now < self.ingested_at:
            return "STARTED"
        return self.final_status


@dataclass(frozen=True)
class Dataset:
    dataset_id: int
    name: str
    workspaces: tuple[str, ...]
    created_at: datetime

    @property
    def primary(self) -> str:
        return self.name.split("/")[1]

    @property
    def processed(self) -> str:
        return self.name.split("/")[2]

    @property
    def era(self) -> str:
        return self.processed.split("-")[0]

    @property
    def processing_version(self) -> int:
        return int(self.processed.rsplit("-v", 1)[1])

    @property
    def processing_string(self) -> str:
        return self.processed.split("-", 1)[1].rsplit("-v", 1)[0]


@dataclass(frozen=True)
class CertFile:
    """A published certification JSON: {"<run>": [[first, last], ...]}."""

    path: str  # relative to /CAF/certification/, e.g. "Collisions24/Cert_..._Golden.json"
    published_at: datetime
    content: dict[str, list[list[int]]]


@dataclass(frozen=True)
class MlModel:
    model_id: int
    filename: str
    target_me: str
    active: bool
    workspace: str
