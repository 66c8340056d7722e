"""The conditions step: per-LS OMS conditions of given runs, written beside the maps.

For each run: skipped when its table is current (same spec, file as its entry records it;
only runs OMS had ended are ever written, so a current table is final), not written while
OMS says the run is ongoing (its LS are still coming), otherwise fetched
(services/oms_conditions.py) and published with its entry (store/conditions.py). A run that
fails is reported with its cause and the others go on; `force` rewrites current tables.

`check_conditions` compares a night's map LS with the tables for the completeness report;
`runs_lacking_conditions` is what a night resumes (runs with maps and no table, or one that
no longer matches its entry).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from dialsflow.config.conditions import ConditionsSpec
from dialsflow.errors import DialsflowError
from dialsflow.lumis import to_ranges
from dialsflow.services import oms_conditions as ls
from dialsflow.services.oms import OmsRuns
from dialsflow.store import atomic
from dialsflow.store import conditions as store
from dialsflow.store.conditions import ConditionsEntry, Rates
from dialsflow.store.layout import parquet_runs, units_on_disk

log = logging.getLogger("dialsflow")


@dataclass
class ConditionsReport:
    written: list[ConditionsEntry] = field(default_factory=list)
    current: list[int] = field(default_factory=list)  # already written with this spec
    ongoing: list[int] = field(default_factory=list)  # OMS has not ended them: not written
    unknown: list[int] = field(default_factory=list)  # asked for, OMS has no such run
    failed: dict[int, str] = field(default_factory=dict)  # run → cause

    def summary(self) -> str:
        return (f"{len(self.written)} runs written, {len(self.current)} already current, "
                f"{len(self.ongoing)} still ongoing in OMS, {len(self.unknown)} unknown to "
                f"OMS, {len(self.failed)} failed")


def run_table(oms: OmsRuns, run: int, spec: ConditionsSpec) -> pa.Table:
    """One run's conditions table, straight from OMS."""
    lumis = ls.run_lumis(oms, run)
    hlt = []
    if spec.hlt_paths:
        names = ls.path_names(oms, run)
        for pattern in spec.hlt_paths:
            paths = ls.matching(names, pattern)
            hlt.append(Rates(pattern, _summed([ls.path_rates(oms, run, p) for p in paths]),
                             paths))
    datasets = [Rates(d, ls.dataset_rates(oms, run, d)) for d in spec.datasets]
    return store.build_table(run, lumis.rows, lumis.ready_bits, hlt, datasets)


def _summed(per_path: list[dict[int, float | None]]) -> dict[int, float | None]:
    """Per LS, the sum of the paths' known rates (null when none is known)."""
    out: dict[int, float | None] = {}
    for rates in per_path:
        for n, rate in rates.items():
            if rate is not None:
                out[n] = (out.get(n) or 0.0) + rate
            else:
                out.setdefault(n, None)
    return out


def write_conditions(oms: OmsRuns, outdir: Path, runs: Iterable[int], spec: ConditionsSpec,
                     *, force: bool = False, only_known: bool = False) -> ConditionsReport:
    """Write the conditions of `runs` under `outdir`. `only_known`: runs OMS does not know
    are left out silently (a FIRST-LAST range holds numbers that are no run). A full disk
    stops at the first table that does not fit (`DiskFull`)."""
    report = ConditionsReport()
    wanted = sorted(set(runs))
    todo = [r for r in wanted if force or not store.current(outdir, r, spec)]
    report.current = [r for r in wanted if r not in set(todo)]
    if not todo:
        return report
    known = {r.run_number: r for r in oms.runs_numbered(todo[0], todo[-1])}
    for run in todo:
        record = known.get(run)
        if record is None:
            if not only_known:
                report.unknown.append(run)
            continue
        if not record.ended:
            report.ongoing.append(run)
            continue
        try:
            table = run_table(oms, run, spec)
            report.written.append(store.publish(outdir, run, table, spec, oms.source_url))
        except atomic.DiskFull as exc:  # every later run would fail alike: stop here, once
            raise atomic.DiskFull(f"{exc}; stopped after {len(report.written)} conditions "
                                  "tables written (each complete and recorded): free space "
                                  "and run again") from None
        except DialsflowError as exc:
            log.error("dialsflow: conditions of run %d: %s", run, exc)
            report.failed[run] = str(exc)
    return report


# ---- what the night's report says of them ------------------------------------------------


@dataclass(frozen=True)
class ConditionsCheck:
    """One run's map LS against the LS its conditions table holds (None: no table)."""

    run: int
    map_ls: frozenset[int]
    oms_ls: frozenset[int] | None

    @property
    def written(self) -> bool:
        return self.oms_ls is not None

    @property
    def without_oms_row(self) -> frozenset[int]:
        """LS with a map but no OMS row: an upstream gap, reported, not a failure."""
        return self.map_ls - self.oms_ls if self.oms_ls is not None else frozenset()

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "written": self.written, "map_ls": len(self.map_ls),
                "oms_ls": None if self.oms_ls is None else len(self.oms_ls),
                "map_ls_without_oms_row": to_ranges(self.without_oms_row)}


def check_conditions(outdir: Path, maps: Mapping[int, Iterable[int]]) -> list[ConditionsCheck]:
    """Per run (ascending), its map LS (`maps`) against its table's manifest entry."""
    checks = []
    for run in sorted(maps):
        found = store.table_entry(outdir, run)
        checks.append(ConditionsCheck(run, frozenset(maps[run]),
                                      None if found is None else frozenset(found.ls_numbers)))
    return checks


def runs_lacking_conditions(outdir: Path) -> list[int]:
    """Runs with a map file on disk but no usable conditions table (none, or not the file
    its entry records): what a resumed night writes."""
    with_maps = {run for key in units_on_disk(outdir) for run in parquet_runs(outdir, key)} \
        if outdir.is_dir() else set()
    return sorted(run for run in with_maps if store.table_entry(outdir, run) is None)
