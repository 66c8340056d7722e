"""What crosses task boundaries of `dials_ingest` (XCom), typed, with its JSON form.

XCom holds only small, secret-free JSON; each payload here converts to and from exactly
that JSON, so tasks work with typed objects and the JSON keys are written in one place.

    load_config → RunConfig
    discover    → [UnitTask] (mapped over) + NightPlan (XCom key "plan")
    ingest      → IngestResult (one per mapped task)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dialsflow.config.runs import RunSelection
from dialsflow.pipeline.units import Unit
from dialsflow.times import utc


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
    """One mapped ingest task: a unit with its due runs, its job and the job's output root."""

    job: str
    output: Path
    unit: Unit

    @property
    def label(self) -> str:
        """Grid label of the mapped task: job, dataset and ME (the ME's last path part)."""
        key = self.unit.key
        return f"{self.job}: {key.dataset} × {key.me.rsplit('/', 1)[-1]}"

    def to_json(self) -> dict[str, Any]:
        return {**self.unit.to_json(), "job": self.job, "output": str(self.output)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UnitTask:
        return cls(data["job"], Path(data["output"]), Unit.from_json(data))


@dataclass(frozen=True)
class UnitCheck:
    """What the completeness task checks for a unit: tonight's due runs and the runs of the
    window that were already complete."""

    task: UnitTask
    complete: tuple[int, ...]

    @property
    def runs(self) -> tuple[int, ...]:
        return tuple(sorted({*self.task.unit.runs, *self.complete}))

    def to_json(self) -> dict[str, Any]:
        return {**self.task.to_json(), "complete": list(self.complete)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UnitCheck:
        return cls(UnitTask.from_json(data), tuple(int(r) for r in data["complete"]))


@dataclass(frozen=True)
class NightPlan:
    """discover's whole result: the mapped tasks, every unit to check, and per job the
    discovery notes (certification used, pending and skipped runs with reasons)."""

    units: list[UnitTask] = field(default_factory=list)
    checks: list[UnitCheck] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)  # JobPlan.to_dict() minus units

    def job_notes(self, job: str) -> dict[str, Any]:
        return next((p for p in self.jobs if p["job"] == job), {})

    def to_json(self) -> dict[str, Any]:
        return {"units": [u.to_json() for u in self.units],
                "checks": [c.to_json() for c in self.checks], "plans": self.jobs}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NightPlan:
        return cls([UnitTask.from_json(u) for u in data["units"]],
                   [UnitCheck.from_json(c) for c in data["checks"]], list(data["plans"]))


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
