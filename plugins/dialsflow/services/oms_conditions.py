"""Per-LS OMS conditions of one run: `lumisections`, HLT path rates and dataset rates.

Queries as the data's users send them (docs/reference/oms.md §6.2, §6.4):
- `lumisections` with `filter[run_number][EQ]`: one row per LS OMS has (LS may be missing,
  attributes null); per-LS luminosities converted to pb^-1 with each row's `meta.row` units
  (as the run-level ones, services/oms.py `lumi_pb`);
- `hltpathinfo` with `filter[run_number][EQ]`, then a pattern matched with fnmatch over the
  run's versioned `path_name`s [LukaLambrecht/pixelae: tools/omstools.py
  (`find_hlt_rate_for_lumisections`)];
- `hltpathrates` with `filter[run_number][EQ]`, `filter[path_name][EQ]` and, directly,
  `group[granularity]=lumisection` (rows are per LS without it, which is what the
  oms-proxy gets: §6.4), keyed by `first_lumisection_number`;
- `datasetrates` with `filter[run_number][EQ]` and `filter[dataset_name][EQ]` [roy-cruz/
  DQMExplore: src/dqmexplore/oms.py].
Paging and retries are services/oms.py's, on either access path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from dialsflow.errors import ServiceError
from dialsflow.services.oms import OmsRuns, QueryOptions, lumi_pb

#: Rows per page of per-LS resources (pixelae asks 5000 to 10000; OMS' limit is 100000).
LS_PAGE_LIMIT = 5000
PER_LS = (("group[granularity]", "lumisection"),)
LUMI_PER_LS = ("delivered_lumi_per_lumisection", "recorded_lumi_per_lumisection")
RATE_FIELDS = ("run_number", "first_lumisection_number", "rate")


@dataclass(frozen=True)
class RunLumis:
    """A run's `lumisections` rows by LS number (lumis in pb^-1) and the `*_ready` bits OMS
    provides, in OMS' order."""

    rows: dict[int, dict[str, Any]]
    ready_bits: tuple[str, ...]


def run_lumis(oms: OmsRuns, run: int) -> RunLumis:
    items = oms.query("lumisections", [("run_number", "EQ", str(run))],
                      QueryOptions(sort="lumisection_number"), limit=LS_PAGE_LIMIT)
    rows: dict[int, dict[str, Any]] = {}
    bits: dict[str, None] = {}
    for item in items:
        a = dict(item.get("attributes") or {})
        ls = a.get("lumisection_number")
        if a.get("run_number") != run or not isinstance(ls, int):
            raise ServiceError(f"OMS lumisections of run {run}: a row without this run's "
                               f"number or an integer lumisection_number: {a!r:.200}")
        units = (item.get("meta") or {}).get("row") or {}
        for name in LUMI_PER_LS:
            a[name] = lumi_pb(a.get(name), units.get(name))
        bits.update((k, None) for k in a if k.endswith("_ready"))
        rows[ls] = a
    return RunLumis(rows, tuple(bits))


def path_names(oms: OmsRuns, run: int) -> list[str]:
    """The run's versioned HLT path names (`hltpathinfo`)."""
    items = oms.query("hltpathinfo", [("run_number", "EQ", str(run))],
                      QueryOptions(fields=("run_number", "path_name")), limit=LS_PAGE_LIMIT)
    return sorted({name for i in items
                   if isinstance(name := (i.get("attributes") or {}).get("path_name"), str)})


def matching(names: Iterable[str], pattern: str) -> list[str]:
    """The names a pattern selects, as pixelae selects them (fnmatch, case-sensitive)."""
    return [n for n in names if fnmatchcase(n, pattern)]


def path_rates(oms: OmsRuns, run: int, path: str) -> dict[int, float | None]:
    """Rate (Hz) of one versioned path per LS."""
    items = oms.query("hltpathrates", [("run_number", "EQ", str(run)),
                                       ("path_name", "EQ", path)],
                      QueryOptions(fields=RATE_FIELDS, sort="first_lumisection_number",
                                   custom=PER_LS), limit=LS_PAGE_LIMIT)
    return _per_ls(items)


def dataset_rates(oms: OmsRuns, run: int, dataset: str) -> dict[int, float | None]:
    """Rate (Hz) of one primary dataset per LS."""
    items = oms.query("datasetrates", [("run_number", "EQ", str(run)),
                                       ("dataset_name", "EQ", dataset)],
                      QueryOptions(fields=RATE_FIELDS, sort="first_lumisection_number"),
                      limit=LS_PAGE_LIMIT)
    return _per_ls(items)


def _per_ls(items: list[dict[str, Any]]) -> dict[int, float | None]:
    out: dict[int, float | None] = {}
    for item in items:
        a = item.get("attributes") or {}
        ls, rate = a.get("first_lumisection_number"), a.get("rate")
        if isinstance(ls, int):
            out[ls] = float(rate) if isinstance(rate, int | float) else None
    return out
