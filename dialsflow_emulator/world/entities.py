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


#: Beam energies (GeV, as OMS reports `energy`) of the 2024 collision modes, and the
#: name prefix of each mode's series in CAF's dailyDCSOnlyJSON folder (docs/reference/dbs_caf.md
#: B1): pp at 13.6 TeV, the 900 GeV special runs, the 5.36 TeV pp reference.
PP_GEV, SPECIAL_GEV, PPREF_GEV = 6800, 450, 2680
DCS_SERIES = {PP_GEV: "Collisions24_13p6TeV", SPECIAL_GEV: "Collisions24Special_900GeV",
              PPREF_GEV: "Collisions24_5p36TeV"}


@dataclass(frozen=True)
class Fill:
    number: int
    start: datetime
    end: datetime
    stable_start: datetime | None
    stable_end: datetime | None
    bunches: int
    energy: int = PP_GEV  # beam energy, GeV


@dataclass(frozen=True)
class Run:
    number: int
    fill: int
    start: datetime
    n_ls: int
    stable_beam: bool
    pileup: float
    era: str = "Run2024C"
    energy: int = PP_GEV  # beam energy, GeV (OMS `energy`)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.n_ls * LS_SECONDS)

    @property
    def pp(self) -> bool:
        """A 13.6 TeV proton-proton collision run: what PromptReco and the Golden JSON cover."""
        return self.stable_beam and self.energy == PP_GEV

    def ls_start(self, ls: int) -> datetime:
        return self.start + timedelta(seconds=(ls - 1) * LS_SECONDS)


#: The file-index statuses a file ends in (docs/reference/dials.md §2.2); a file stuck in
#: STARTED never gets one.
FAILED_STATUSES = ("FILE_NOT_AVAILABLE", "COPY_ERROR", "ROOTFILE_ERROR", "PARSING_ERROR")


@dataclass(frozen=True)
class DqmFile:
    """One DQMIO file: a contiguous LS range of one run of one dataset, and its way through
    DBS and DIALS' ingestion (docs/reference/dials.md §2.2).

    DIALS' hourly indexer lists it (PENDING) at `indexed_at`; a worker takes it at
    `ingest_started_at` (STARTED) and inserts its rows LS by LS until `rows_done_at`, then
    runs the ML models and sets `final_status` at `ingested_at`. A failed file keeps the rows
    of its first `rows_cap` LS; `ingested_at` None means STARTED for ever."""

    file_id: int
    dataset_id: int
    run: int
    first_ls: int
    last_ls: int
    lfn: str
    size: int
    block_name: str
    registered_at: datetime  # visible in DBS from then on
    indexed_at: datetime  # DIALS file-index: absent -> PENDING
    ingest_started_at: datetime  # PENDING -> STARTED, rows start to appear
    rows_done_at: datetime  # rows of every LS inserted (then ML inference)
    ingested_at: datetime | None  # STARTED -> final_status; None: STARTED for ever
    final_status: str = "FINISHED"
    rows_cap: int | None = None  # LS that ever get rows, counted from first_ls; None = all
    err_trace: str | None = None
    invalidated_at: datetime | None = None  # DBS is_file_valid 1 -> 0

    @property
    def ls_numbers(self) -> range:
        return range(self.first_ls, self.last_ls + 1)

    @property
    def n_ls(self) -> int:
        return self.last_ls - self.first_ls + 1

    @property
    def stuck(self) -> bool:
        return self.ingested_at is None

    def dials_status(self, now: datetime) -> str | None:
        if now < self.indexed_at:
            return None
        if now < self.ingest_started_at:
            return "PENDING"
        if self.ingested_at is None or now < self.ingested_at:
            return "STARTED"
        return self.final_status

    def rows_count(self, now: datetime) -> int:
        """How many LS (from first_ls on, in order) have their rows in DIALS at `now`."""
        if now < self.ingest_started_at:
            return 0
        cap = self.n_ls if self.rows_cap is None else self.rows_cap
        span = (self.rows_done_at - self.ingest_started_at).total_seconds()
        elapsed = (now - self.ingest_started_at).total_seconds()
        done = self.n_ls if span <= 0 else int(self.n_ls * elapsed / span)
        return max(0, min(cap, done))

    def rows_ls(self, now: datetime) -> range:
        return range(self.first_ls, self.first_ls + self.rows_count(now))

    def valid(self, now: datetime) -> bool:
        """DBS `is_file_valid` at `now`."""
        return self.invalidated_at is None or now < self.invalidated_at


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
    """A published certification JSON: {"<run>": [[first, last], ...]}.

    A superseded cumulative Golden or Muon file is moved to the class's `outToDate/` folder
    when its successor is published (docs/reference/dbs_caf.md B1)."""

    path: str  # relative to /CAF/certification/, e.g. "Collisions24/Cert_..._Golden.json"
    published_at: datetime
    content: dict[str, list[list[int]]]
    kind: str = ""  # golden, muon, era, ppref, dcs, dcs-latest
    moved_at: datetime | None = None
    moved_to: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]

    def path_at(self, now: datetime) -> str | None:
        """Where the file is at `now`; None before it is published."""
        if now < self.published_at:
            return None
        if self.moved_at is not None and now >= self.moved_at:
            return self.moved_to
        return self.path

    def created_at(self, now: datetime) -> datetime:
        """When the file came to its place at `now` (published, or moved there)."""
        if self.moved_at is not None and now >= self.moved_at:
            return self.moved_at
        return self.published_at


@dataclass(frozen=True)
class RunCertification:
    """How the Golden JSONs treat one 13.6 TeV collision run over the season."""

    run: int
    ready_at: datetime  # certification decided (run end + a delay of weeks to months)
    golden_first: str | None  # path of the first Golden release holding it
    certified_at: datetime | None  # that release's publication
    dropped_in: str | None = None  # path of the Golden release that no longer holds it
    dropped_at: datetime | None = None


@dataclass(frozen=True)
class MlModel:
    model_id: int
    filename: str
    target_me: str
    active: bool
    workspace: str
