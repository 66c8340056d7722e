"""What crosses task boundaries of `dials_ingest` (XCom), typed, with its JSON form.

XCom holds only small, secret-free JSON; each payload here converts to and from exactly
that JSON, so tasks work with typed objects and the JSON keys are written in one place.

    load_config → RunConfig
    discover    → NightPlan: [UnitTask] (mapped over) and per job discovery's notes
    ingest      → IngestResult (one per mapped task)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dialsflow.config.runs import RunSelection
from dialsflow.pipeline.units import Unit, short_dataset, short_me
from dialsflow.times import utc

#: Length of Airflow's `task_instance.rendered_map_index` column (String(250)).
LABEL_MAX = 250


@dataclass(frozen=True)
class RunConfig:
    """One DAG run's validated configuration (load_config's result)."""

    jobs: tuple[str, ...]
    window: tuple[str, str]  # ISO UTC data interval [start, end)
    runs: str | None  # the explicit run selection, as the user wrote it
    force: bool
    test: bool
    run_id: str
    started: str  # ISO UTC, when load_config ran (forced retries resume after it)

    @property
    def selection(self) -> RunSelection | None:
        return RunSelection.parse(self.runs)

    @property
    def interval(self) -> tuple[datetime, datetime]:
        return utc(self.window[0]), utc(self.window[1])

    def to_json(self) -> dict[str, Any]:
        return {"jobs": list(self.jobs), "window": list(self.window), "runs": self.runs,
                "force": self.force, "test": self.test, "run_id": self.run_id,
                "started": self.started}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunConfig:
        start, end = data["window"]
        return cls(tuple(data["jobs"]), (start, end), data["runs"], bool(data["force"]),
                   bool(data["test"]), data["run_id"], data["started"])


@dataclass(frozen=True)
class UnitTask:
    """One mapped ingest task: a unit with its due runs, its job and the job's output root,
    the CAF file that certified each run and the runs DIALS is stuck on (manifest notes)."""

    job: str
    output: Path
    unit: Unit
    certified_by: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    stuck: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        """Grid label of the mapped task and the prefix of its failure lines: job, dataset
        without its data tier, ME's last path part; within the 250 characters Airflow's
        `rendered_map_index` column holds."""
        key = self.unit.key
        label = f"{self.job}: {short_dataset(key.dataset)} × {short_me(key.me)}"
        return label if len(label) <= LABEL_MAX else label[:LABEL_MAX - 1] + "…"

    def certification_of(self) -> dict[int, str]:
        """Run → the CAF file that certified it."""
        return {run: name for name, runs in self.certified_by.items() for run in runs}

    def to_json(self) -> dict[str, Any]:
        # "label" is for the DAG's map_index_template only (rendered before the task runs)
        return {**self.unit.to_json(), "job": self.job, "output": str(self.output),
                "certified_by": {k: list(v) for k, v in self.certified_by.items()},
                "stuck": list(self.stuck), "label": self.label}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UnitTask:
        return cls(data["job"], Path(data["output"]), Unit.from_json(data),
                   {k: tuple(int(r) for r in v) for k, v in
                    (data.get("certified_by") or {}).items()},
                   tuple(int(r) for r in data.get("stuck") or ()))


@dataclass(frozen=True)
class NightPlan:
    """discover's whole result: the mapped tasks and, per job, discovery's notes (the
    certification in force, counts, every run not complete with its reason, stuck files)."""

    units: list[UnitTask] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def job_notes(self, job: str) -> dict[str, Any]:
        return next((p for p in self.jobs if p["job"] == job), {})

    def to_json(self) -> dict[str, Any]:
        return {"units": [u.to_json() for u in self.units], "plans": self.jobs}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NightPlan:
        return cls([UnitTask.from_json(u) for u in data["units"]], list(data["plans"]))


@dataclass(frozen=True)
class IngestResult:
    """What one mapped task wrote."""

    job: str
    workspace: str
    dataset: str
    me: str
    written: list[int]
    rows: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job, "workspace": self.workspace, "dataset": self.dataset,
                "me": self.me, "written": list(self.written), "rows": self.rows,
                "bytes": self.bytes}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IngestResult:
        return cls(data["job"], data["workspace"], data["dataset"], data["me"],
                   [int(r) for r in data["written"]], int(data["rows"]), int(data["bytes"]))
