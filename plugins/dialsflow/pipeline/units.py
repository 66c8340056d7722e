"""What to fetch: regexes expanded into concrete dataset × ME units, with their runs.

Expansion happens before work is split (dataset-index and mes of the workspace), so a unit
is always one concrete dataset × ME; the dimension of each ME comes from DIALS `mes`, so mixed
1D/2D lists work.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dialsflow.config.runs import RunSelection
from dialsflow.errors import InputError
from dialsflow.services.dials import DialsClient
from dialsflow.store.layout import UnitKey

#: The dimension each `me_type` (CLI -t, jobs file) insists on; "auto" asks DIALS.
ME_DIMS = {"h1d": 1, "h2d": 2}
log = logging.getLogger("dialsflow")


def short_me(me: str) -> str:
    """An ME's last path part: how labels, log lines and the page name it."""
    return me.rsplit("/", 1)[-1]


def short_dataset(dataset: str) -> str:
    """`/ZeroBias/Run2024C-PromptReco-v1/DQMIO` → `ZeroBias/Run2024C-PromptReco-v1`."""
    parts = [p for p in dataset.split("/") if p]
    return "/".join(parts[:2]) or dataset


@dataclass(frozen=True)
class Unit:
    key: UnitKey
    dataset_id: int
    me_id: int
    dim: int
    runs: tuple[int, ...] = field(default=())

    @property
    def endpoint(self) -> str:
        return "th1/" if self.dim == 1 else "th2/"

    def to_json(self) -> dict[str, Any]:
        """Small JSON (the kwargs of one mapped Airflow task)."""
        return {"workspace": self.key.workspace, "dataset": self.key.dataset,
                "dataset_id": self.dataset_id, "me": self.key.me, "me_id": self.me_id,
                "dim": self.dim, "runs": list(self.runs)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Unit:
        return cls(UnitKey(data["workspace"], data["dataset"], data["me"]),
                   int(data["dataset_id"]), int(data["me_id"]), int(data["dim"]),
                   tuple(int(r) for r in data["runs"]))


def expand_datasets(client: DialsClient, patterns: list[str]) -> dict[str, int]:
    """Concrete dataset name → DIALS dataset id, in pattern order."""
    found: dict[str, int] = {}
    for pattern in patterns:
        rows = client.list_all("dataset-index/", {"dataset__regex": pattern, "fields":
                                                  "dataset_id,dataset"},
                               what=f"datasets matching {pattern!r}")
        if not rows:
            raise InputError(f"dataset pattern {pattern!r} matches no dataset in workspace "
                             f"{client.settings.workspace or 'default'}")
        for row in rows:
            found.setdefault(row["dataset"], row["dataset_id"])
    return found


def expand_mes(client: DialsClient, patterns: list[str],
               me_type: str) -> dict[str, tuple[int, int]]:
    """Concrete ME name → (me_id, dim); `me_type` h1d/h2d insists on that dimension."""
    found: dict[str, tuple[int, int]] = {}
    for pattern in patterns:
        rows = client.get_json("mes/", {"me__regex": pattern}, what=f"MEs matching {pattern!r}")
        if not rows:
            raise InputError(f"ME pattern {pattern!r} matches no monitoring element in "
                             f"workspace {client.settings.workspace or 'default'}")
        for row in rows:
            dim = int(row["dim"])
            if me_type != "auto" and dim != ME_DIMS[me_type]:
                kind = "h1d" if dim == 1 else "h2d"
                raise InputError(f"ME {row['me']!r} is {dim}D ({kind}) but -t {me_type} was "
                                 f"given: use -t auto or -t {kind}")
            found.setdefault(row["me"], (int(row["me_id"]), dim))
    return found


def dials_runs(client: DialsClient, dataset_id: int, dataset: str,
               selection: RunSelection | None) -> list[int]:
    """Runs DIALS has for the dataset (within the selection), ascending."""
    params: dict = {"dataset_id": dataset_id, "fields": "run_number"}
    if selection is not None:
        params |= {"run_number__gte": selection.first, "run_number__lte": selection.last}
    rows = client.list_all("run/", params, what=f"runs of {dataset}")
    runs = sorted(r["run_number"] for r in rows
                  if selection is None or r["run_number"] in selection)
    if selection is not None and selection.listed is not None and \
            (absent := sorted(selection.listed - set(runs))):
        log.warning("%s: runs not in DIALS (yet), skipped: %s", dataset,
                    ",".join(map(str, absent)))
    return runs


def resolve_units(client: DialsClient, dataset_patterns: list[str], me_patterns: list[str],
               me_type: str, selection: RunSelection | None,
               workspace: str) -> list[Unit]:
    datasets = expand_datasets(client, dataset_patterns)
    mes = expand_mes(client, me_patterns, me_type)
    units = []
    for dataset, dataset_id in datasets.items():
        runs = tuple(dials_runs(client, dataset_id, dataset, selection))
        for me, (me_id, dim) in mes.items():
            units.append(Unit(UnitKey(workspace, dataset, me), dataset_id, me_id, dim, runs))
    return units
