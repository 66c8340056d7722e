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
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache

LS_SECONDS = 23.31  # one lumisection, 2^18 LHC orbits


def utc(text: str) -> datetime:
    """Parse an ISO-8601 UTC timestamp ('Z' or offset; naive means UTC)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime) -> str:
    """Serialise like DIALS and OMS do: second resolution, UTC, trailing Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stable_int(*parts: object, bits: int = 63) -> int:
    """A platform-independent hash of the parts, for seeding per-object randomness."""
    size = (bits + 7) // 8 + 1
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=size).digest()
    return int.from_bytes(digest, "big") >> (size * 8 - bits)


# --------------------------------------------------------------------------- MEs


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


def _bpix(me_id: int, kind: str, layer: int) -> MonitorElement:
    ladders = {1: 6, 2: 14, 3: 22, 4: 32}[layer]
    y_bin = 2 * (2 * ladders + 1)
    return MonitorElement(
        me_id=me_id,
        name=(
            f"PixelPhase1/Phase1_MechanicalView/PXBarrel/{kind}_per_SignedModuleCoord_"
            f"per_SignedLadderCoord_PXLayer_{layer}"
        ),
        dim=2, x_bin=72, x_min=-4.5, x_max=4.5,
        y_bin=y_bin, y_min=-(ladders + 0.5), y_max=ladders + 0.5,
        shape="bpix", mean_entries=3e6 if kind == "digi_occupancy" else 8e5,
    )


def _charge(me_id: int, where: str) -> MonitorElement:
    return MonitorElement(me_id, f"PixelPhase1/Tracks/{where}", 1, 100, 0.0, 80000.0,
                          shape="landau", mean_entries=4e4)


def _size(me_id: int, where: str) -> MonitorElement:
    return MonitorElement(me_id, f"PixelPhase1/Tracks/{where}", 1, 30, 0.0, 30.0,
                          shape="falling", mean_entries=4e4)


ZPHI = MonitorElement(96, "PixelPhase1/Tracks/PXBarrel/clusterposition_zphi_ontrack_PXLayer_1",
                      2, 300, -60.0, 60.0, 200, -3.2, 3.2, shape="band", mean_entries=2e5)
EB_OCCUPANCY = MonitorElement(3, "EcalBarrel/EBOccupancyTask/EBOT digi occupancy",
                              2, 360, 0.0, 360.0, 170, -85.0, 85.0, shape="flat",
                              mean_entries=2e6)

TRACKER_MES_DEMO: tuple[MonitorElement, ...] = (
    _charge(5, "PXBarrel/charge_PXLayer_1"),
    _charge(6, "PXBarrel/charge_PXLayer_2"),
    _size(9, "PXBarrel/size_PXLayer_1"),
    _charge(13, "PXForward/charge_PXDisk_+1"),
    _charge(16, "PXForward/charge_PXDisk_-1"),
    _bpix(15678, "clusters", 1),
    _bpix(15682, "digi_occupancy", 1),
    _bpix(15683, "digi_occupancy", 2),
)
TRACKER_MES_BENCH: tuple[MonitorElement, ...] = (
    _charge(5, "PXBarrel/charge_PXLayer_1"),
    _bpix(15682, "digi_occupancy", 1),
    _bpix(15685, "digi_occupancy", 4),
    ZPHI,
)
ECAL_MES: tuple[MonitorElement, ...] = (
    MonitorElement(1, "EcalBarrel/EBOccupancyTask/EBOT DCC entries", 1, 36, 9.0, 45.0,
                   shape="flat", mean_entries=6e4),
    EB_OCCUPANCY,
)

#: File-name rules of DIALS' CAF client (das_caf_api.md B1), prefix-anchored like re.match.
CERT_KIND_PATTERNS = {
    "golden": re.compile(r"Cert_Collisions(.*)_(\d{6})_(\d{6})_Golden\.json"),
    "muon": re.compile(r"Cert_Collisions(.*)_(\d{6})_(\d{6})_Muon\.json"),
    "dcs": re.compile(r"Collisions(.*)_(.*)_(\d{6})_(\d{6})_DCSOnly_TkPx\.json"),
}

WORLD_KINDS = tuple(CERT_KIND_PATTERNS)

#: Every workspace DIALS production is configured with (dials_api.md §1, §4).
WORKSPACE_NAMES = ("csc", "ecal", "egamma", "hcal", "jetmet", "muon_staging", "tracker")
DEFAULT_WORKSPACE = "tracker"


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Profile:
    name: str
    start: datetime
    days: int
    runs_per_fill: tuple[int, int]
    ls_median: float
    ls_sigma: float
    ls_clip: tuple[int, int]
    tracker_mes: tuple[MonitorElement, ...]
    fill_gap_hours: tuple[float, float] = (2.0, 7.0)
    big_run_ls: int = 0  # plant one run this long (realistic maximum), 0 = none


PROFILES: dict[str, Profile] = {
    # A week of Run2024C, a few runs a day, short runs: fast for demos and tests.
    "demo": Profile("demo", utc("2024-04-16T06:00:00Z"), 7, (1, 2), 45.0, 0.6, (8, 160),
                    TRACKER_MES_DEMO, fill_gap_hours=(5.0, 11.0)),
    # Many LS and large 2D maps; ~60 runs; one 2,400-LS run as in 2024E.
    "bench": Profile("bench", utc("2024-04-16T06:00:00Z"), 12, (2, 4), 110.0, 0.8, (50, 2400),
                     TRACKER_MES_BENCH, big_run_ls=2400),
}


# --------------------------------------------------------------------------- entities


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


# --------------------------------------------------------------------------- the world


@dataclass(eq=False)  # identity hash: per-world caches key on it
class World:
    profile: Profile
    seed: int
    fills: list[Fill]
    runs: list[Run]
    datasets: list[Dataset]
    files: list[DqmFile]
    mes_by_workspace: dict[str, tuple[MonitorElement, ...]]
    missing_ls: dict[tuple[int, int], frozenset[int]]  # (dataset_id, run) -> LS DIALS lacks
    cert_files: list[CertFile]
    held_back_runs: frozenset[int]
    bad_runs: frozenset[int]
    ml_models: list[MlModel]
    default_now: datetime
    cert_class: str = "Collisions24"
    _files_by_key: dict[tuple[int, int], list[DqmFile]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for f in self.files:
            self._files_by_key.setdefault((f.dataset_id, f.run), []).append(f)
        self.run_numbers = [r.number for r in self.runs]
        self.run_by_number = {r.number: r for r in self.runs}
        self.dataset_by_id = {d.dataset_id: d for d in self.datasets}
        self.file_by_id = {f.file_id: f for f in self.files}
        self.fill_by_number = {f.number: f for f in self.fills}

    # ---- lookups -------------------------------------------------------------------------

    def files_of(self, dataset_id: int, run: int) -> list[DqmFile]:
        return self._files_by_key.get((dataset_id, run), [])

    def datasets_in(self, workspace: str) -> list[Dataset]:
        return [d for d in self.datasets if workspace in d.workspaces]

    def mes_in(self, workspace: str) -> tuple[MonitorElement, ...]:
        return self.mes_by_workspace.get(workspace, ())

    def runs_between(self, low: int | None, high: int | None) -> list[Run]:
        lo = 0 if low is None else bisect.bisect_left(self.run_numbers, low)
        hi = len(self.runs) if high is None else bisect.bisect_right(self.run_numbers, high)
        return self.runs[lo:hi]

    # ---- time-dependent views ------------------------------------------------------------

    def dbs_files(self, dataset_id: int, run: int, now: datetime) -> list[DqmFile]:
        return [f for f in self.files_of(dataset_id, run) if f.registered_at <= now]

    @lru_cache(maxsize=65536)  # noqa: B019 - the world is immutable and lives for the process
    def dials_ls(self, dataset_id: int, run: int, now: datetime) -> tuple[int, ...]:
        """LS numbers DIALS holds for (dataset, run) at `now`, ascending."""
        missing = self.missing_ls.get((dataset_id, run), frozenset())
        out: list[int] = []
        for f in self.files_of(dataset_id, run):
            if f.dials_status(now) == "FINISHED":
                out.extend(ls for ls in f.ls_numbers if ls not in missing)
        return tuple(sorted(out))

    def dbs_ls(self, dataset_id: int, run: int, now: datetime) -> tuple[int, ...]:
        out: list[int] = []
        for f in self.dbs_files(dataset_id, run, now):
            out.extend(f.ls_numbers)
        return tuple(sorted(out))

    def file_for_ls(self, dataset_id: int, run: int, ls: int) -> DqmFile:
        for f in self.files_of(dataset_id, run):
            if f.first_ls <= ls <= f.last_ls:
                return f
        raise KeyError((dataset_id, run, ls))

    def lumi_per_ls(self, run: int, ls: int) -> float:
        """Delivered /ub in one LS: pileup · bunches · f_rev / σ_inel(80 mb) · 23.31 s, ±3 %.

        One model for every twin, so OMS and DIALS' brilcalc agree on each run."""
        r = self.run_by_number[run]
        bunches = self.fill_by_number[r.fill].bunches if r.fill in self.fill_by_number else 0
        wobble = 0.97 + stable_int("lumi", self.seed, run, ls) % 600 / 10_000
        return r.pileup * bunches * 11245.5 / 80_000.0 * LS_SECONDS * wobble

    def published_cert_files(self, now: datetime) -> list[CertFile]:
        return [c for c in self.cert_files if c.published_at <= now]

    # ---- truth ---------------------------------------------------------------------------

    def truth(self, now: datetime | None = None) -> dict:
        """Everything a test may assert against, as plain JSON-able data."""
        now = now or self.default_now
        datasets = []
        for d in self.datasets:
            runs = {}
            for r in self.runs:
                files = self.files_of(d.dataset_id, r.number)
                if not files:
                    continue
                dbs = self.dbs_ls(d.dataset_id, r.number, now)
                dials = self.dials_ls(d.dataset_id, r.number, now)
                statuses = [f.dials_status(now) for f in files]
                runs[str(r.number)] = {
                    "dbs_ls": _ranges(dbs),
                    "dials_ls": _ranges(dials),
                    "dials_missing_ls": sorted(set(dbs) - set(dials)) if dials else [],
                    "in_dbs": bool(dbs),
                    "in_dials": bool(dials),
                    "dials_complete": bool(files) and all(s in ("FINISHED", "COPY_ERROR")
                                                          for s in statuses),
                    "dbs_registered_at": iso(min(f.registered_at for f in files)),
                    "dials_ingested_at": iso(max(f.ingested_at for f in files)),
                    "files": [
                        {"file_id": f.file_id, "lfn": f.lfn, "ls": [f.first_ls, f.last_ls],
                         "block": f.block_name, "status": f.dials_status(now)}
                        for f in files
                    ],
                }
            datasets.append({
                "dataset_id": d.dataset_id, "dataset": d.name, "workspaces": list(d.workspaces),
                "runs": runs,
            })
        golden = self.latest_cert("golden", now)
        return {
            "profile": self.profile.name,
            "seed": self.seed,
            "now": iso(now),
            "default_now": iso(self.default_now),
            "cert_class": self.cert_class,
            "fills": [
                {"fill_number": f.number, "start_time": iso(f.start), "end_time": iso(f.end)}
                for f in self.fills
            ],
            "runs": [
                {
                    "run_number": r.number, "fill_number": r.fill, "start_time": iso(r.start),
                    "end_time": iso(r.end), "n_ls": r.n_ls, "stable_beam": r.stable_beam,
                    "bad": r.number in self.bad_runs,
                    "held_back_in_dials": r.number in self.held_back_runs,
                    "ended": r.end <= now,
                }
                for r in self.runs
            ],
            "datasets": datasets,
            "workspaces": {
                ws: {
                    "datasets": [d.name for d in self.datasets_in(ws)],
                    "mes": [
                        {"me_id": m.me_id, "me": m.name, "dim": m.dim, "x_bin": m.x_bin,
                         "y_bin": m.y_bin}
                        for m in self.mes_in(ws)
                    ],
                }
                for ws in WORKSPACE_NAMES
            },
            "planted": {
                "never_certified_runs": sorted(
                    r.number for r in self.runs if not r.stable_beam or r.number in self.bad_runs
                ),
                "held_back_in_dials": sorted(self.held_back_runs),
                "dials_missing_ls": [
                    {"dataset_id": ds, "run": run, "ls": sorted(ls)}
                    for (ds, run), ls in sorted(self.missing_ls.items())
                ]
                + [
                    {"dataset_id": f.dataset_id, "run": f.run,
                     "ls": list(f.ls_numbers), "file_id": f.file_id, "cause": f.final_status}
                    for f in self.files
                    if f.final_status != "FINISHED"
                ],
            },
            "certification": {
                "files": [
                    {"path": c.path, "published_at": iso(c.published_at),
                     "runs": len(c.content)}
                    for c in self.cert_files
                ],
                "golden_latest": golden.path if golden else None,
                "golden_runs": golden.content if golden else {},
            },
        }

    def latest_cert(self, kind: str, now: datetime) -> CertFile | None:
        """The newest published file of a kind, chosen by time as DIALS' CAF client does."""
        pattern = CERT_KIND_PATTERNS[kind]
        found = [c for c in self.published_cert_files(now)
                 if pattern.match(c.path.rsplit("/", 1)[1])
                 and ("dailyDCSOnlyJSON/" in c.path) == (kind == "dcs")]
        return max(found, key=lambda c: c.published_at, default=None)

    @cached_property
    def me_index(self) -> dict[tuple[str, int], MonitorElement]:
        return {(ws, m.me_id): m for ws, mes in self.mes_by_workspace.items() for m in mes}


def _ranges(numbers: tuple[int, ...] | list[int]) -> list[list[int]]:
    """Compress sorted LS numbers into inclusive [first, last] ranges."""
    out: list[list[int]] = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


ranges = _ranges


# --------------------------------------------------------------------------- building


def build_world(profile_name: str = "demo", seed: int = 1) -> World:
    """Build the world for a profile and seed; same inputs, same world, on any machine."""
    return _build_world(profile_name, seed)


@lru_cache(maxsize=8)
def _build_world(profile_name: str, seed: int) -> World:
    if profile_name not in PROFILES:
        raise ValueError(f"unknown profile {profile_name!r}; choose from {sorted(PROFILES)}")
    p = PROFILES[profile_name]
    rng = random.Random(f"{p.name}:{seed}")

    fills, runs = _build_runs(p, rng)
    zb = Dataset(15102369, "/ZeroBias/Run2024C-PromptReco-v1/DQMIO", ("tracker", "ecal"),
                 p.start - timedelta(days=30))
    ex = Dataset(15102368, "/StreamExpress/Run2024C-Express-v1/DQMIO", ("tracker", "csc"),
                 p.start - timedelta(days=30))
    datasets = [ex, zb]

    # Runs held back in DIALS for days (a stuck ingestion), and runs flagged bad.
    stable = [r for r in runs if r.stable_beam]
    held_back = frozenset(r.number for r in rng.sample(stable[len(stable) // 3:], 2))
    bad = frozenset(r.number for r in rng.sample(stable, max(1, len(stable) // 8)))

    files: list[DqmFile] = []
    missing: dict[tuple[int, int], frozenset[int]] = {}
    for d in datasets:
        express = d.primary == "StreamExpress"
        for r in runs:
            if not express and not r.stable_beam:
                continue  # PromptReco of ZeroBias only for collision runs
            # Express is registered ~1 h after the run, PromptReco after the ~48 h delay.
            reg = r.end + timedelta(hours=rng.uniform(0.5, 1.5) if express
                                    else rng.uniform(46, 52))
            lag = timedelta(hours=rng.uniform(1, 8))
            if r.number in held_back and not express:
                lag += timedelta(days=3)
            files.extend(_split_files(d, r, reg, lag, rng))
        # Planted LS gaps: single LS without per-LS data in a few runs.
        candidates = [r for r in runs if r.stable_beam and r.n_ls > 20]
        for r in rng.sample(candidates, min(3, len(candidates))):
            k = rng.randint(1, 4)
            missing[(d.dataset_id, r.number)] = frozenset(rng.sample(range(2, r.n_ls), k))
    # Planted: one ZeroBias file whose ingestion failed for good.
    multi = [f for f in files if f.dataset_id == zb.dataset_id and f.first_ls > 1]
    if multi:
        victim = rng.choice(multi)
        files[files.index(victim)] = replace(
            victim, final_status="COPY_ERROR",
            err_trace="OSError: XRootD error [3011] No servers are available to read the file.",
        )

    cert_files = _build_certification(p, runs, bad, rng)
    mes = {"tracker": p.tracker_mes, "ecal": ECAL_MES}
    models = [
        MlModel(1, "model_bpix_l1_digi_nmf_v1.onnx",
                "PixelPhase1/Phase1_MechanicalView/PXBarrel/digi_occupancy_per_SignedModuleCoord_"
                "per_SignedLadderCoord_PXLayer_1", True, "tracker"),
        MlModel(2, "model_charge_l1_ae_v0.onnx", "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1",
                False, "tracker"),
    ]
    last_end = max(r.end for r in runs)
    return World(
        profile=p, seed=seed, fills=fills, runs=runs, datasets=datasets, files=files,
        mes_by_workspace=mes, missing_ls=missing, cert_files=cert_files,
        held_back_runs=held_back, bad_runs=bad, ml_models=models,
        # Default "now": a day after the last run ended, so the newest runs are still
        # waiting for PromptReco/DIALS and the latest golden JSON lags behind.
        default_now=(last_end + timedelta(days=1)).replace(microsecond=0),
    )


def _build_runs(p: Profile, rng: random.Random) -> tuple[list[Fill], list[Run]]:
    fills: list[Fill] = []
    runs: list[Run] = []
    t = p.start
    fill_no, run_no = 9510, 379412
    end = p.start + timedelta(days=p.days)
    planted_big = False
    while t < end:
        fill_start = t
        bunches = rng.choice([1190, 2340, 2352, 2448])
        stable_start = t + timedelta(minutes=rng.uniform(30, 60))
        t = stable_start
        n_runs = rng.randint(*p.runs_per_fill)
        for _ in range(n_runs):
            n_ls = int(min(max(rng.lognormvariate(math.log(p.ls_median), p.ls_sigma),
                               p.ls_clip[0]), p.ls_clip[1]))
            if p.big_run_ls and not planted_big and len(runs) >= 5:
                n_ls, planted_big = p.big_run_ls, True
            runs.append(Run(run_no, fill_no, t, n_ls, True, round(rng.uniform(48, 64), 2)))
            t = runs[-1].end + timedelta(minutes=rng.uniform(3, 25))
            run_no += rng.randint(1, 6)
        stable_end = t
        fills.append(Fill(fill_no, fill_start, t + timedelta(minutes=20), stable_start,
                          stable_end, bunches))
        # Between fills: a short run without stable beams now and then (not certifiable).
        t += timedelta(minutes=30)
        if rng.random() < 0.5:
            n_ls = rng.randint(5, 30)
            runs.append(Run(run_no, fill_no, t, n_ls, False, 0.0))
            t = runs[-1].end
            run_no += rng.randint(1, 6)
        t += timedelta(hours=rng.uniform(*p.fill_gap_hours))
        fill_no += rng.randint(1, 4)
    return fills, runs


def _split_files(d: Dataset, r: Run, registered: datetime, lag: timedelta,
                 rng: random.Random) -> list[DqmFile]:
    """1–3 files per run with contiguous LS ranges; one DBS block per dataset and day."""
    n_files = 1 if r.n_ls < 30 else rng.randint(1, 3)
    cuts = sorted(rng.sample(range(2, r.n_ls + 1), n_files - 1)) if n_files > 1 else []
    bounds = [1, *cuts, r.n_ls + 1]
    block_uuid = uuid.UUID(int=stable_int(d.name, r.end.date(), bits=128))
    block = f"{d.name}#{block_uuid}"
    out = []
    kind = "express" if d.primary == "StreamExpress" else "data"
    for i in range(n_files):
        first, last = bounds[i], bounds[i + 1] - 1
        guid = str(uuid.UUID(int=stable_int(d.dataset_id, r.number, i, bits=128))).upper()
        lfn = (f"/store/{kind}/{d.era}/{d.primary}/DQMIO/{d.processing_string}-v"
               f"{d.processing_version}/000/{r.number // 1000:03d}/{r.number % 1000:03d}/00000/"
               f"{guid}.root")
        start = _seconds(registered + timedelta(minutes=rng.uniform(5, 60)))
        out.append(DqmFile(
            file_id=15540000000 + stable_int(d.dataset_id, r.number, i) % 400000000,
            dataset_id=d.dataset_id, run=r.number, first_ls=first, last_ls=last, lfn=lfn,
            size=int((last - first + 1) * rng.uniform(0.4e6, 1.2e6)), block_name=block,
            registered_at=_seconds(registered), ingest_started_at=start,
            ingested_at=_seconds(start + lag),
        ))
    return out


def _seconds(value: datetime) -> datetime:
    """Whole seconds, as every service (and the truth) prints times."""
    return value.replace(microsecond=0)


def _build_certification(p: Profile, runs: list[Run], bad: frozenset[int],
                         rng: random.Random) -> list[CertFile]:
    """Cumulative Golden/Muon JSONs every 2 days, a daily DCS-only JSON, and traps."""
    first = runs[0].number
    files: list[CertFile] = []
    dcs_ranges: dict[int, list[list[int]]] = {}
    golden_ranges: dict[int, list[list[int]]] = {}
    for r in runs:
        if not r.stable_beam:
            continue
        lo = rng.randint(1, 3)
        dcs_ranges[r.number] = [[lo, r.n_ls]]
        if r.number in bad:
            continue
        if r.n_ls > 40 and rng.random() < 0.25:  # partly certified: a bad stretch inside
            cut = rng.randint(lo + 5, r.n_ls - 10)
            golden_ranges[r.number] = [[lo, cut], [cut + 6, r.n_ls]]
        else:
            golden_ranges[r.number] = [[lo, r.n_ls]]
    last_end = max(r.end for r in runs)
    day = p.start.replace(hour=0, minute=0, second=0)
    cls = "Collisions24"
    # A file is published when its content changes: a new name, as on CAF.
    last_dcs: dict = {}
    last_gold: dict = {}
    while day <= last_end + timedelta(days=8):
        dcs_at = day + timedelta(hours=19, minutes=31)
        dcs = {str(n): v for n, v in dcs_ranges.items()
               if _run_end(runs, n) <= dcs_at - timedelta(hours=2)}
        if dcs and dcs != last_dcs:
            last_dcs = dcs
            last = max(map(int, dcs))
            files.append(CertFile(
                f"{cls}/DCSOnly_JSONS/dailyDCSOnlyJSON/Collisions24_13p6TeV_{first}_{last}"
                "_DCSOnly_TkPx.json", dcs_at, dcs))
        # Golden and Muon: every second day at 10:00, runs certified ~4 days after they end.
        if (day - p.start.replace(hour=0, minute=0, second=0)).days % 2 == 1:
            at = day + timedelta(hours=10, minutes=rng.randint(0, 59))
            gold = {str(n): v for n, v in golden_ranges.items()
                    if _run_end(runs, n) <= at - timedelta(days=4)}
            if gold and gold != last_gold:
                last_gold = gold
                last = max(map(int, gold))
                files.append(CertFile(f"{cls}/Cert_Collisions2024_{first}_{last}_Golden.json",
                                      at, gold))
                muon = dict(gold)
                muon.update({str(n): v for n, v in dcs_ranges.items()
                             if str(n) not in gold and int(n) <= last})
                files.append(CertFile(f"{cls}/Cert_Collisions2024_{first}_{last}_Muon.json",
                                      at + timedelta(minutes=3), muon))
        day += timedelta(days=1)
    # Traps a CAF consumer must not pick: a lower-case 'golden' pp-ref file published last,
    # and an era file.
    t0 = p.start + timedelta(days=p.days + 9)
    some = dict(list(golden_ranges.items())[:2])
    files.append(CertFile(f"{cls}/Cert_Collisions2024_ppref_{first}_{first + 5}_golden.json",
                          t0, {str(k): v for k, v in some.items()}))
    files.append(CertFile(f"{cls}/2024C_Golden.json", p.start + timedelta(days=3),
                          {str(k): v for k, v in some.items()}))
    files.sort(key=lambda c: c.published_at)
    return files


def _run_end(runs: list[Run], number: int) -> datetime:
    for r in runs:
        if r.number == number:
            return r.end
    raise KeyError(number)
