"""What the nightly DAG should find due, computed from the emulator's truth alone."""

from __future__ import annotations

from datetime import timedelta

from dialsflow.config.jobs import Job
from dialsflow_emulator.world import utc

ZB = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"


def due_from_truth(truth: dict, job: Job, start, end, dataset: str = ZB,
             certified: set[int] | None = None) -> tuple[list[int], dict[int, str]]:
    """(due runs, {pending run: why}) of a dataset from the truth alone; certified =
    the latest Golden JSON's runs unless given."""
    golden = certified if certified is not None else \
        {int(r) for r in truth["certification"]["golden_runs"]}
    ds = next(d for d in truth["datasets"] if d["dataset"] == dataset)["runs"]
    low = start - timedelta(days=job.lookback_days)
    due, pending = [], {}
    for r in truth["runs"]:
        n = r["run_number"]
        if not (r["ended"] and low <= utc(r["end_time"]) < end and r["stable_beam"]
                and n in golden):
            continue
        info = ds.get(str(n))
        in_flight = info and any(f["status"] in ("PENDING", "STARTED") for f in info["files"])
        if info and info["in_dials"] and not in_flight:
            due.append(n)  # with a COPY_ERROR file too: its hole is an upstream gap
        else:
            pending[n] = "DIALS"
    return due, pending
