"""Are all lumisections there? DBS vs DIALS vs parquet, per dataset × ME × run.

Three sets per run: DBS (what the dataset holds, as DAS says), DIALS (what DIALS ingested)
and parquet (what we wrote). Their differences say whose problem a gap is:

- `missing_in_parquet` = DBS − parquet: what the user lacks, whatever the cause;
- `ours` = DIALS − parquet: DIALS has it and we did not write it (our ingestion failed);
- `upstream_gap` = DBS − DIALS: DIALS lacks it (failed or pending DIALS ingestion);
- `extra` = parquet − DBS: we hold LS the dataset does not (invalidated files, wrong run).

DIALS is optional: without it only DBS vs parquet is known. The seed's other check, the
same run/LS in two datasets of the list, is reported as `overlaps` (from DBS).
The CLI (`dialsflow check-lumis`) and the nightly DAG both call `check_units`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from dialsflow.config.runs import RunSelection
from dialsflow.errors import InputError, ServiceError
from dialsflow.lumis import LumiMap, format_ranges, to_ranges
from dialsflow.services.dbs import DbsClient
from dialsflow.services.dials import DialsClient
from dialsflow.store.layout import UnitKey, parquet_runs, run_file
from dialsflow.store.parquet import read_lumis

log = logging.getLogger("dialsflow")

EMPTY: frozenset[int] = frozenset()


# ---- the three sources ------------------------------------------------------------------


def dials_dataset_id(client: DialsClient, dataset: str) -> int:
    """DIALS' id of a dataset in the client's workspace."""
    rows = client.list_all("dataset-index/", {"dataset": dataset,
                                               "fields": "dataset_id,dataset"},
                           what=f"dataset {dataset}")
    for row in rows:
        if row["dataset"] == dataset:
            return int(row["dataset_id"])
    raise ServiceError(f"dataset {dataset!r} is not in DIALS workspace "
                       f"{client.settings.workspace or 'default'}")


def dials_lumis(client: DialsClient, dataset_id: int,
                runs: Iterable[int] | None = None, *, workers: int = 4) -> LumiMap:
    """Run -> LS numbers DIALS holds (`lumisection/`); per run when runs are given, so a
    handful of runs never pages through a whole dataset."""

    def query(params: dict[str, Any]) -> list[dict]:
        params = {"dataset_id": dataset_id, "fields": "run_number,ls_number", **params}
        return client.list_all("lumisection/", params,
                               what=f"lumisections of dataset {dataset_id}")

    if runs is None:
        pages = [query({})]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dials-ls") as pool:
            pages = list(pool.map(lambda run: query({"run_number": run}), sorted(set(runs))))
    found: dict[int, set[int]] = {}
    for rows in pages:
        for row in rows:
            found.setdefault(int(row["run_number"]), set()).add(int(row["ls_number"]))
    return {run: frozenset(ls) for run, ls in sorted(found.items())}


# ---- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunCheck:
    """The three LS sets of one dataset × ME × run; `dials` is None when not asked."""

    key: UnitKey
    run: int
    dbs: frozenset[int]
    parquet: frozenset[int]
    dials: frozenset[int] | None = None

    @property
    def missing_in_parquet(self) -> frozenset[int]:
        return self.dbs - self.parquet

    @property
    def ours(self) -> frozenset[int] | None:
        """DIALS has it, parquet does not: our ingestion failed (None without DIALS)."""
        return None if self.dials is None else self.dials - self.parquet

    @property
    def upstream_gap(self) -> frozenset[int] | None:
        """DBS has it, DIALS does not (None without DIALS)."""
        return None if self.dials is None else self.dbs - self.dials

    @property
    def extra(self) -> frozenset[int]:
        return self.parquet - self.dbs

    @property
    def ok(self) -> bool:
        return not (self.missing_in_parquet or self.extra or self.ours)

    @property
    def parquet_missing_fraction(self) -> float:
        """Share of the DBS LS that parquet lacks (0 when DBS has none)."""
        return len(self.missing_in_parquet) / len(self.dbs) if self.dbs else 0.0

    @property
    def dials_missing_fraction(self) -> float | None:
        """Share of the DBS LS that DIALS lacks: what a tolerance is applied to."""
        if self.upstream_gap is None:
            return None
        return len(self.upstream_gap) / len(self.dbs) if self.dbs else 0.0

    def to_json(self) -> dict[str, Any]:
        def sets(value: frozenset[int] | None) -> list[list[int]] | None:
            return None if value is None else to_ranges(value)

        return {
            "run": self.run, "ok": self.ok,
            "dbs": sets(self.dbs), "dials": sets(self.dials), "parquet": sets(self.parquet),
            "missing_in_parquet": sets(self.missing_in_parquet), "ours": sets(self.ours),
            "upstream_gap": sets(self.upstream_gap), "extra": sets(self.extra),
            "counts": {"dbs": len(self.dbs),
                       "dials": None if self.dials is None else len(self.dials),
                       "parquet": len(self.parquet),
                       "missing_in_parquet": len(self.missing_in_parquet),
                       "ours": _len(self.ours), "upstream_gap": _len(self.upstream_gap),
                       "extra": len(self.extra)},
            "parquet_missing_fraction": self.parquet_missing_fraction,
            "dials_missing_fraction": self.dials_missing_fraction,
        }


def _len(value: frozenset[int] | None) -> int | None:
    return None if value is None else len(value)


@dataclass(frozen=True)
class Overlap:
    """(run, LS) that DBS lists in both datasets: counted twice if both are analysed."""

    datasets: tuple[str, str]
    lumis: LumiMap

    @property
    def n_ls(self) -> int:
        return sum(map(len, self.lumis.values()))

    def to_json(self) -> dict[str, Any]:
        return {"datasets": list(self.datasets), "ls": self.n_ls,
                "runs": {str(run): to_ranges(ls) for run, ls in self.lumis.items()}}


SUMMARY_KEYS = ("dbs", "dials", "parquet", "missing_in_parquet", "ours", "upstream_gap",
                "extra")


@dataclass(frozen=True)
class CompletenessReport:
    units: tuple[UnitKey, ...]  # the dataset × ME units asked about
    checks: tuple[RunCheck, ...]  # every checked dataset × ME × run, in order
    overlaps: tuple[Overlap, ...]
    with_dials: bool

    @property
    def problems(self) -> list[RunCheck]:
        return [c for c in self.checks if not c.ok]

    @property
    def complete(self) -> bool:
        return not self.problems

    def totals(self) -> dict[str, int | None]:
        """LS counts summed over all checks (None for DIALS sets when not asked)."""
        out: dict[str, int | None] = {}
        for name in SUMMARY_KEYS:
            values = [getattr(c, name) for c in self.checks]
            out[name] = (None if name in ("dials", "ours", "upstream_gap") and not
                         self.with_dials else sum(len(v or EMPTY) for v in values))
        return out

    def summary(self) -> dict[str, Any]:
        return {"units": len(self.units), "runs": len(self.checks),
                "runs_with_issues": len(self.problems), "ls": self.totals(),
                "overlap_ls": sum(o.n_ls for o in self.overlaps)}

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable: LS sets as [[first, last], ...] ranges."""
        units = []
        for key in self.units:
            units.append({"workspace": key.workspace, "dataset": key.dataset, "me": key.me,
                          "runs": [c.to_json() for c in self.checks if c.key == key]})
        return {"complete": self.complete, "with_dials": self.with_dials,
                "summary": self.summary(), "units": units,
                "overlaps": [o.to_json() for o in self.overlaps]}

    def render_table(self, max_ls_chars: int = 60, verdict: str | None = None) -> str:
        """One line per dataset × ME × run with issues, then a summary; plain text for logs.
        MEs are shown by their shortest path suffix that is unique in the report. The
        summary starts with `verdict` when a caller judged the numbers (a tolerance), so
        table and verdict never disagree; else with complete/INCOMPLETE."""
        short = _short_names([k.me for k in self.units])
        head = ["dataset", "ME", "run", "DBS"]
        if self.with_dials:
            head += ["DIALS"]
        head += ["parquet", "missing"]
        if self.with_dials:
            head += ["ours", "upstream"]
        head += ["extra", "missing LS"]
        rows = []
        for c in self.problems:
            row = [c.key.dataset, short[c.key.me], str(c.run), str(len(c.dbs))]
            if self.with_dials:
                row += [str(_len(c.dials))]
            row += [str(len(c.parquet)), str(len(c.missing_in_parquet))]
            if self.with_dials:
                row += [str(_len(c.ours)), str(_len(c.upstream_gap))]
            extra = f" extra {format_ranges(c.extra, 20)}" if c.extra else ""
            row += [str(len(c.extra)), format_ranges(c.missing_in_parquet, max_ls_chars) + extra]
            rows.append(row)
        lines = []
        if rows:
            widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
            numeric = set(range(2, len(head) - 1))
            for r in [head, *rows]:
                cells = [cell.rjust(w) if i in numeric else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(r, widths, strict=True))]
                lines.append("  ".join(cells).rstrip())
        for o in self.overlaps:
            lines.append(f"overlap: {o.n_ls} LS in {len(o.lumis)} runs are in both "
                         f"{o.datasets[0]} and {o.datasets[1]} (runs "
                         f"{format_ranges(o.lumis, max_ls_chars)})")
        lines.append(self._summary_line(verdict))
        return "\n".join(lines)

    def _summary_line(self, verdict: str | None = None) -> str:
        t = self.totals()
        dbs = t["dbs"] or 0
        missing = t["missing_in_parquet"] or 0
        share = f" ({100 * missing / dbs:.1f} %)" if dbs else ""
        verdict = verdict or ("complete" if self.complete else "INCOMPLETE")
        text = (f"{verdict}: {len(self.units)} dataset × "
                f"ME units, {len(self.checks)} runs checked, {len(self.problems)} with issues; "
                f"DBS {dbs} LS, missing in parquet {missing}{share}")
        if self.with_dials:
            text += f" (ours {t['ours']}, upstream gap {t['upstream_gap']})"
        return text + f", extra {t['extra']}"


def _short_names(names: list[str]) -> dict[str, str]:
    """Each name's shortest '/'-suffix that no other name ends with."""
    out = {}
    for name in names:
        parts = name.split("/")
        for n in range(1, len(parts) + 1):
            suffix = "/".join(parts[-n:])
            if not any(o != name and (o == suffix or o.endswith("/" + suffix)) for o in names):
                break
        out[name] = suffix
    return out


# ---- the check --------------------------------------------------------------------------


def select_units(found: Iterable[UnitKey], dataset_patterns: list[str],
                 me_patterns: list[str] | None = None) -> list[UnitKey]:
    """Units whose dataset and ME match a pattern (DIALS regex semantics: unanchored search,
    case-sensitive); every pattern must match one unit, else `InputError`."""
    units = list(found)
    chosen = [k for k in units if any(re.search(p, k.dataset) for p in dataset_patterns)]
    for pattern in dataset_patterns:
        if not any(re.search(pattern, k.dataset) for k in units):
            names = sorted({k.dataset for k in units}) or ["nothing"]
            raise InputError(f"dataset pattern {pattern!r} matches nothing on disk "
                             f"(found: {', '.join(names)})")
    if me_patterns is None:
        return chosen
    for pattern in me_patterns:
        if not any(re.search(pattern, k.me) for k in chosen):
            raise InputError(f"ME pattern {pattern!r} matches no ME on disk for the chosen "
                             "datasets")
    return [k for k in chosen if any(re.search(p, k.me) for p in me_patterns)]


def _within(lumis: LumiMap, selection: RunSelection | None) -> LumiMap:
    return {run: ls for run, ls in lumis.items() if selection is None or run in selection}


def check_units(outdir: str | Path, units: Mapping[UnitKey, RunSelection | None], dbs: DbsClient,
                dials: Mapping[str, DialsClient] | None = None) -> CompletenessReport:
    """Compare DBS, parquet and (with `dials`: DIALS client per workspace) LS sets.

    Checked runs per unit: those DBS has for the dataset plus those on disk, within the
    unit's run selection (None = all). DBS is asked once per dataset, DIALS once per
    workspace × dataset, parquet files read one column each.
    """
    dbs_cache: dict[tuple[str, RunSelection | None], LumiMap] = {}
    checked: list[tuple[UnitKey, LumiMap, list[int]]] = []
    for key, selection in units.items():
        if (key.dataset, selection) not in dbs_cache:
            found = dbs.run_lumis(key.dataset, selection)
            dbs_cache[(key.dataset, selection)] = _within(found, selection)
        in_dbs = dbs_cache[(key.dataset, selection)]
        on_disk = [r for r in parquet_runs(outdir, key) if selection is None or r in selection]
        checked.append((key, in_dbs, sorted(set(in_dbs) | set(on_disk))))

    dials_sets: dict[tuple[str, str], LumiMap] = {}
    if dials is not None:
        wanted: dict[tuple[str, str], set[int]] = {}
        for key, _, runs in checked:
            wanted.setdefault((key.workspace, key.dataset), set()).update(runs)
        for (workspace, dataset), runs in wanted.items():
            client = dials.get(workspace)
            if client is None:
                raise InputError(f"no DIALS client for workspace {workspace!r}")
            dataset_id = dials_dataset_id(client, dataset)
            dials_sets[(workspace, dataset)] = dials_lumis(client, dataset_id, runs)

    checks = []
    for key, in_dbs, runs in checked:
        in_dials = dials_sets.get((key.workspace, key.dataset))
        for run in runs:
            checks.append(RunCheck(key, run, in_dbs.get(run, EMPTY),
                                   read_lumis(run_file(outdir, key, run)),
                                   None if in_dials is None else in_dials.get(run, EMPTY)))
    by_dataset: dict[str, dict[int, frozenset[int]]] = {}
    for key, in_dbs, runs in checked:
        merged = by_dataset.setdefault(key.dataset, {})
        for run in runs:
            merged[run] = merged.get(run, EMPTY) | in_dbs.get(run, EMPTY)
    return CompletenessReport(tuple(units), tuple(checks), tuple(overlaps(by_dataset)),
                              dials is not None)


def overlaps(lumis_by_dataset: Mapping[str, LumiMap]) -> list[Overlap]:
    """Every pair of datasets with (run, LS) in common."""
    out = []
    for a, b in combinations(sorted(lumis_by_dataset), 2):
        la, lb = lumis_by_dataset[a], lumis_by_dataset[b]
        common = {run: la[run] & lb[run] for run in sorted(la.keys() & lb.keys())}
        common = {run: ls for run, ls in common.items() if ls}
        if common:
            out.append(Overlap((a, b), common))
    return out
