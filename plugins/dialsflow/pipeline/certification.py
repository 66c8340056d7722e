"""LS-level certification beside the maps: which LS of every run under OUTDIR the Golden and
the DCS-only JSONs in force certify, refreshed without rewriting any map.

Maps carry run-level certification only (a run is fetched once any file certifies it), but
users select LS: `lumis.parquet` answers per LS, and the CAF files it was built from are
kept as served so a selection can be reproduced after CAF moves on. A refresh keeps the
files in force, then rewrites the table only when its content would change (a newer or
different JSON, new runs on disk); a second refresh with nothing new writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from dialsflow.config.connections import CafSettings
from dialsflow.config.jobs import Job
from dialsflow.errors import InputError
from dialsflow.services.caf import KIND_PATTERNS, CafClient, Certification
from dialsflow.store import certification as store
from dialsflow.store.layout import ensure_writable, units_on_disk
from dialsflow.store.manifest import Manifest
from dialsflow.times import iso, now_iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CertificationRefresh:
    """What a refresh did, for a log line or a report."""

    outdir: Path
    kept: list[str] = field(default_factory=list)  # CAF files written (new or changed bytes)
    in_force: dict[str, list[str]] = field(default_factory=dict)  # kind → names
    runs: int = 0  # runs with maps under OUTDIR
    runs_added: list[int] = field(default_factory=list)  # not in the previous table
    rows: int = 0
    golden_ls: int = 0
    dcs_ls: int = 0
    table_written: bool = False

    def summary(self) -> str:
        files = "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in self.in_force.items())
        table = "rewritten" if self.table_written else "unchanged"
        return (f"certification of {self.outdir}: {self.rows} LS of {self.runs} runs, "
                f"{self.golden_ls} golden, {self.dcs_ls} dcs; table {table}"
                f"{f' ({len(self.runs_added)} runs added)' if self.runs_added else ''}; "
                f"{len(self.kept)} JSON kept anew; in force: {files}")


def _kind(name: str) -> str:
    return next((k for k, p in KIND_PATTERNS.items() if p.match(name)), "golden")


def maps_lumis(outdir: Path) -> dict[int, set[int]]:
    """run → LS of every run with maps under OUTDIR (the manifest's LS ranges, all units)."""
    manifest = Manifest(outdir)
    out: dict[int, set[int]] = {}
    for key in units_on_disk(outdir):
        for entry in manifest.entries(key):
            lumis = out.setdefault(entry.run, set())
            for first, last in entry.ls_ranges:
                lumis.update(range(first, last + 1))
    return out


def _flags(cert: Certification, run: int, ls: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Which of `ls` the certification holds for the run, and the file that says so."""
    source = cert.source(run)
    hit = np.zeros(len(ls), dtype=bool)
    for first, last in cert.ranges(run):
        hit |= (ls >= first) & (ls <= last)
    return hit, source.name if source else None


def build_table(lumis: dict[int, set[int]], golden: Certification, dcs: Certification):
    """The per-LS table: every LS with maps ∪ every LS the files in force list, per run."""
    cols: dict[str, list] = {k: [] for k in store.SCHEMA.names}
    for run in sorted(lumis):
        listed = set(lumis[run])
        for cert in (golden, dcs):
            for first, last in cert.ranges(run):
                listed.update(range(first, last + 1))
        ls = np.fromiter(sorted(listed), dtype=np.int64, count=len(listed))
        g, g_file = _flags(golden, run, ls)
        d, d_file = _flags(dcs, run, ls)
        cols["run_number"].append(np.full(len(ls), run, dtype=np.int64))
        cols["ls_number"].append(ls)
        cols["golden"].append(g)
        cols["dcs"].append(d)
        cols["golden_file"].extend(g_file if x else None for x in g)
        cols["dcs_file"].extend(d_file if x else None for x in d)
    arrays = [np.concatenate(cols[c]) if cols[c] else np.zeros(0, dtype=t)
              for c, t in (("run_number", np.int64), ("ls_number", np.int64),
                           ("golden", bool), ("dcs", bool))]
    files = {"golden": golden.names, "dcs": dcs.names}
    return store.table_from_columns(*arrays, cols["golden_file"], cols["dcs_file"], files)


def refresh_certification(outdir: Path, golden: Certification, dcs: Certification, *,
                          fetched_at: str | None = None) -> CertificationRefresh:
    """Keep the files in force (exact bytes + meta) and rewrite `lumis.parquet` when its
    content changes. Maps are never touched."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        raise InputError(f"output directory {outdir} does not exist: give the -o of "
                         "dialsflow fetch (or a job's output)")
    unread = [f.name for f in (*golden.files, *dcs.files) if not f.body]
    if unread:  # a Certification built by hand, not by CafClient.current()
        raise ValueError(f"no bytes of {', '.join(unread)}: keep files CafClient downloaded")
    lumis = maps_lumis(outdir)
    table = build_table(lumis, golden, dcs)  # before any write: a failure leaves nothing
    fetched_at = fetched_at or now_iso()
    kept = [f.name for f in (*golden.files, *dcs.files)
            if store.keep(outdir, f.name, f.body, url=f.url, last_modified=iso(f.modified_at),
                          kind=_kind(f.name), fetched_at=fetched_at)]
    old = store.read_table(outdir)
    previous_runs = set(old.column("run_number").unique().to_pylist()) if old else set()
    changed = old is None or not old.equals(table) \
        or store.files_in_force(old) != store.files_in_force(table)
    if changed:
        store.write_table(outdir, table)
    golden_ls, dcs_ls = (pc.sum(table.column(c)).as_py() or 0 for c in ("golden", "dcs"))
    result = CertificationRefresh(
        outdir, kept, store.files_in_force(table), len(lumis),
        sorted(set(lumis) - previous_runs) if old is not None else sorted(lumis),
        table.num_rows, golden_ls, dcs_ls, changed)
    log.info("%s", result.summary())
    return result


def certifications(base: CafSettings, energy: str) -> tuple[Certification, Certification]:
    """The Golden and the DCS-only certification in force for `base`'s class."""
    with CafClient(replace(base, kind="golden")) as caf:
        golden = caf.current()
    with CafClient(replace(base, kind="dcs"), energy=energy) as caf:
        dcs = caf.current()
    return golden, dcs


def refresh_from_caf(outdir: Path, base: CafSettings, energy: str) -> CertificationRefresh:
    """What `dialsflow certification` runs: ask CAF, then refresh OUTDIR."""
    if not Path(outdir).is_dir():
        raise InputError(f"output directory {outdir} does not exist: give the -o of "
                         "dialsflow fetch (or a job's output)")
    return refresh_certification(outdir, *certifications(base, energy))


def refresh_job_certification(job: Job, caf_base: CafSettings | None) -> CertificationRefresh:
    """The nightly step for one job: its class's Golden and its energy's DCS-only JSON. A job
    with no output yet gets its root, the files in force and an empty table."""
    ensure_writable(job.output)
    return refresh_from_caf(job.output, job.caf_settings(caf_base), job.certification.energy)
