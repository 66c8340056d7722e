"""`fetch`: datasets × MEs × runs from DIALS into parquet; the CLI's and the DAG's entry point."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from dialsflow.config.connections import DialsSettings
from dialsflow.config.inputs import RunSelection
from dialsflow.errors import InputError
from dialsflow.pipeline.ingest import FetchReport, ingest_units
from dialsflow.pipeline.units import Unit, plan_units
from dialsflow.services.dials import DialsClient

log = logging.getLogger("dialsflow")
DEFAULT_WORKSPACE = "tracker"


def ensure_writable(outdir: Path) -> None:
    """Fail before any request if OUTDIR cannot take files."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", suffix=".tmp", dir=outdir)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise InputError(f"output path {outdir} exists and is not a directory") from None
    except OSError as exc:
        raise InputError(f"output directory {outdir} is not writable: "
                         f"{exc.strerror or exc}") from None


def with_workspace(settings: DialsSettings, workspace: str | None) -> DialsSettings:
    return replace(settings, workspace=workspace or settings.workspace or DEFAULT_WORKSPACE)


def plan(client: DialsClient, datasets: list[str], mes: list[str], *, me_type: str = "auto",
         runs: RunSelection | None = None) -> list[Unit]:
    units = plan_units(client, datasets, mes, me_type, runs,
                       client.settings.workspace or DEFAULT_WORKSPACE)
    log.info("plan: %d dataset × ME units, %d runs to fetch", len(units),
             sum(len(u.runs) for u in units))
    return units


def fetch(settings: DialsSettings, datasets: list[str], mes: list[str], outdir: Path, *,
          me_type: str = "auto", runs: RunSelection | None = None,
          resubmit: bool = False, test: bool = False, concurrency: int = 4,
          on_result=None) -> FetchReport:
    ensure_writable(outdir)
    client = DialsClient(settings, pool_size=max(4, concurrency))
    with contextlib.closing(client):
        units = plan(client, datasets, mes, me_type=me_type, runs=runs)
        return ingest_units(client, units, outdir, resubmit=resubmit, test=test,
                            concurrency=concurrency, on_result=on_result)

