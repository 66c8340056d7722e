"""The World: every entity of one profile and seed, and what each service sees of it at a
given clock (DBS: registered files; DIALS: ingested LS; CAF: published JSONs)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache

from .basics import LS_SECONDS, iso, ranges, stable_int
from .entities import (
    CERT_KIND_PATTERNS,
    WORKSPACE_NAMES,
    CertFile,
    Dataset,
    DqmFile,
    Fill,
    MlModel,
    MonitorElement,
    Run,
)
from .profiles import Profile


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
                    "dbs_ls": ranges(dbs),
                    "dials_ls": ranges(dials),
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
