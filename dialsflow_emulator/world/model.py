"""The World: every entity of one profile and seed, and what each service sees of it at a
given clock (DBS: registered files and their validity; DIALS: indexed files and the rows
inserted so far; CAF: published JSONs where they are)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, lru_cache

from .basics import LS_SECONDS, iso, ranges, stable_int
from .entities import (
    CERT_KIND_PATTERNS,
    FAILED_STATUSES,
    PP_GEV,
    WORKSPACE_NAMES,
    CertFile,
    Dataset,
    DqmFile,
    Fill,
    MlModel,
    MonitorElement,
    Run,
    RunCertification,
)
from .profiles import Profile


@dataclass(frozen=True)
class Placed:
    """A path of the CAF area at a clock: the version served there, and when the path first
    came into being in its folder (published or moved there)."""

    cert: CertFile
    created: datetime


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
    run_certification: dict[int, RunCertification]  # 13.6 TeV collision runs
    dcs_ranges: dict[int, list[list[int]]]  # tracker/pixel-ready LS of every collision run
    cert_class: str = "Collisions24"
    # OMS per-LS gaps (world/omsgaps.py): run -> LS without a row; run -> {LS: null kind}
    oms_missing_ls: dict[int, frozenset[int]] = field(default_factory=dict)
    oms_null_ls: dict[int, dict[int, str]] = field(default_factory=dict)
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

    def dbs_files(self, dataset_id: int, run: int, now: datetime,
                  valid_only: bool = False) -> list[DqmFile]:
        """Files DBS lists at `now`; `valid_only` is DBS' validFileOnly=1."""
        return [f for f in self.files_of(dataset_id, run)
                if f.registered_at <= now and (not valid_only or f.valid(now))]

    @lru_cache(maxsize=65536)  # noqa: B019 - the world is immutable and lives for the process
    def dials_ls(self, dataset_id: int, run: int, now: datetime) -> tuple[int, ...]:
        """LS numbers DIALS holds rows of for (dataset, run) at `now`, ascending: every LS of
        a FINISHED file, the first ones of a file still STARTED or failed while parsing."""
        missing = self.missing_ls.get((dataset_id, run), frozenset())
        out: list[int] = []
        for f in self.files_of(dataset_id, run):
            out.extend(ls for ls in f.rows_ls(now) if ls not in missing)
        return tuple(sorted(out))

    def dbs_ls(self, dataset_id: int, run: int, now: datetime,
               valid_only: bool = False) -> tuple[int, ...]:
        out: list[int] = []
        for f in self.dbs_files(dataset_id, run, now, valid_only):
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

    def cert_area(self, now: datetime) -> dict[str, Placed]:
        """Every path of the CAF area at `now` (relative to /CAF/certification/). A path
        written again serves its latest version; a superseded cumulative file sits in
        outToDate/ from its move on, with its own modification time (a move keeps it)."""
        out: dict[str, Placed] = {}
        for cert in self.published_cert_files(now):  # in publication order
            path = cert.path_at(now)
            assert path is not None
            before = out.get(path)
            created = cert.created_at(now)
            out[path] = Placed(cert, min(before.created, created) if before else created)
        return out

    def latest_cert(self, kind: str, now: datetime) -> CertFile | None:
        """The file DIALS' CAF client picks at `now`: in the kind's folder (the class folder,
        or dailyDCSOnlyJSON/ for dcs), names matching the kind's pattern with re.match, the
        largest "YYYY-MM-DD HH:MM" modification time, the first by name on a tie
        (docs/reference/dbs_caf.md B1)."""
        pattern = CERT_KIND_PATTERNS[kind]
        folder = self.cert_class + ("/DCSOnly_JSONS/dailyDCSOnlyJSON/" if kind == "dcs" else "/")
        found = sorted((path.rsplit("/", 1)[1], placed.cert)
                       for path, placed in self.cert_area(now).items()
                       if path.rsplit("/", 1)[0] + "/" == folder
                       and pattern.match(path.rsplit("/", 1)[1]))
        if not found:
            return None
        return max(found, key=lambda item: f"{item[1].published_at:%Y-%m-%d %H:%M}")[1]

    # ---- truth ---------------------------------------------------------------------------

    def truth(self, now: datetime | None = None) -> dict:
        """Everything a test may assert against, as plain JSON-able data."""
        now = now or self.default_now
        golden = self.latest_cert("golden", now)
        return {
            "profile": self.profile.name,
            "seed": self.seed,
            "now": iso(now),
            "default_now": iso(self.default_now),
            "cert_class": self.cert_class,
            "fills": [
                {"fill_number": f.number, "start_time": iso(f.start), "end_time": iso(f.end),
                 "energy": f.energy}
                for f in self.fills
            ],
            "runs": [self._run_truth(r, now) for r in self.runs],
            "datasets": [self._dataset_truth(d, now) for d in self.datasets],
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
            "planted": self._planted_truth(),
            "certification": {
                "files": [
                    {"path": c.path, "kind": c.kind, "published_at": iso(c.published_at),
                     "moved_at": iso(c.moved_at) if c.moved_at else None,
                     "moved_to": c.moved_to, "path_now": c.path_at(now),
                     "runs": len(c.content)}
                    for c in self.cert_files
                ],
                "golden_releases": [
                    {"path": c.path, "published_at": iso(c.published_at),
                     "moved_at": iso(c.moved_at) if c.moved_at else None,
                     "runs": sorted(map(int, c.content))}
                    for c in self.cert_files if c.kind == "golden"
                ],
                "golden_latest": golden.path if golden else None,
                "golden_runs": golden.content if golden else {},
                # what DIALS' CAF client picks per kind at `now`
                "latest": {kind: cert.path if (cert := self.latest_cert(kind, now)) else None
                           for kind in ("golden", "muon", "dcs")},
            },
        }

    def _run_truth(self, r: Run, now: datetime) -> dict:
        cert = self.run_certification.get(r.number)
        return {
            "run_number": r.number, "fill_number": r.fill, "start_time": iso(r.start),
            "end_time": iso(r.end), "n_ls": r.n_ls, "stable_beam": r.stable_beam,
            "energy": r.energy, "bad": r.number in self.bad_runs,
            "held_back_in_dials": r.number in self.held_back_runs,
            "ended": r.end <= now,
            "golden_first": cert.golden_first if cert else None,
            "certified_at": iso(cert.certified_at) if cert and cert.certified_at else None,
            "decertified_at": iso(cert.dropped_at) if cert and cert.dropped_at else None,
        }

    def _dataset_truth(self, d: Dataset, now: datetime) -> dict:
        runs = {}
        for r in self.runs:
            files = self.files_of(d.dataset_id, r.number)
            if not files:
                continue
            dbs = self.dbs_ls(d.dataset_id, r.number, now)
            dials = self.dials_ls(d.dataset_id, r.number, now)
            statuses = [f.dials_status(now) for f in files]
            ingested = [f.ingested_at for f in files]
            runs[str(r.number)] = {
                "dbs_ls": ranges(dbs),
                "dbs_valid_ls": ranges(self.dbs_ls(d.dataset_id, r.number, now, True)),
                "dials_ls": ranges(dials),
                "dials_missing_ls": sorted(set(dbs) - set(dials)) if dials else [],
                "in_dbs": bool(dbs),
                "in_dials": bool(dials),
                # settled: every file FINISHED or failed for good
                "dials_complete": all(s == "FINISHED" or s in FAILED_STATUSES
                                      for s in statuses),
                "dbs_registered_at": iso(min(f.registered_at for f in files)),
                "dials_ingested_at": None if None in ingested else iso(
                    max(t for t in ingested if t is not None)),
                "files": [
                    {"file_id": f.file_id, "lfn": f.lfn, "ls": [f.first_ls, f.last_ls],
                     "block": f.block_name, "status": f.dials_status(now),
                     "valid": f.valid(now), "rows_ls": ranges(list(f.rows_ls(now))),
                     "indexed_at": iso(f.indexed_at),
                     "ingest_started_at": iso(f.ingest_started_at)}
                    for f in files
                ],
            }
        return {"dataset_id": d.dataset_id, "dataset": d.name, "workspaces": list(d.workspaces),
                "runs": runs}

    def _planted_truth(self) -> dict:
        def file_entry(f: DqmFile) -> dict:
            cap = f.n_ls if f.rows_cap is None else f.rows_cap
            return {"dataset_id": f.dataset_id, "run": f.run, "file_id": f.file_id,
                    "lfn": f.lfn, "ls": [f.first_ls, f.last_ls],
                    "rows_ls": [f.first_ls, f.first_ls + cap - 1] if cap else []}

        certs = self.run_certification
        return {
            "never_certified_runs": sorted(
                r.number for r in self.runs if not r.pp or r.number in self.bad_runs),
            "held_back_in_dials": sorted(self.held_back_runs),
            "dials_missing_ls": [
                {"dataset_id": ds, "run": run, "ls": sorted(ls)}
                for (ds, run), ls in sorted(self.missing_ls.items())
            ] + [
                {"dataset_id": f.dataset_id, "run": f.run,
                 "ls": list(f.ls_numbers)[f.rows_cap or 0:], "file_id": f.file_id,
                 "cause": f.final_status}
                for f in self.files if f.final_status != "FINISHED"
            ],
            "stuck_files": [file_entry(f) for f in self.files if f.stuck],
            "parsing_error_files": [file_entry(f) for f in self.files
                                    if f.final_status == "PARSING_ERROR"],
            "invalid_files": [
                {**file_entry(f), "invalidated_at": iso(f.invalidated_at)}
                for f in self.files if f.invalidated_at is not None
            ],
            "decertified_runs": sorted(n for n, c in certs.items() if c.dropped_at is not None),
            "late_certified_runs": sorted(
                n for n, c in certs.items() if c.certified_at is not None
                and c.certified_at - self.run_by_number[n].end >= timedelta(days=60)),
            "special_energy_runs": sorted(r.number for r in self.runs
                                          if r.stable_beam and r.energy != PP_GEV),
            # LS rows OMS lacks (lumisections, hltpathrates, datasetrates alike)
            "oms_missing_ls": {str(run): sorted(ls)
                               for run, ls in sorted(self.oms_missing_ls.items())},
            # null cells of OMS lumisections: "lumi" (pileup, *_lumi_per_lumisection) or
            # "dcs" (every *_ready bit)
            "oms_null_ls": {str(run): {str(ls): kind for ls, kind in sorted(cells.items())}
                            for run, cells in sorted(self.oms_null_ls.items())},
        }

    @cached_property
    def me_index(self) -> dict[tuple[str, int], MonitorElement]:
        return {(ws, m.me_id): m for ws, mes in self.mes_by_workspace.items() for m in mes}
