"""One writer per dataset × ME at a time, across processes and DAG runs.

Backfills run several days at once (Airflow's backfill has its own max_active_runs, not the
DAG's), and an operator may trigger a run while the nightly one is busy; each plans from the
same certification and manifest, so two mapped tasks can be due to fetch the same run. Each
holds the unit's lock while it decides what is still missing and fetches it: the second one
then finds the run complete in the manifest and skips it, so no run is ingested twice.

The lock is `flock` on a file under OUTDIR/_locks/: it dies with its process (a SIGKILLed
worker leaves no stale lock) and works across hosts on file systems with POSIX locks (local
disks, NFSv4); on object stores mounted through FUSE check it before relying on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from dialsflow.store.layout import UnitKey, lock_file

log = logging.getLogger("dialsflow")


@contextlib.contextmanager
def unit_lock(outdir: str | Path, key: UnitKey) -> Iterator[float]:
    """Hold the unit's lock; yields the seconds spent waiting for it."""
    path = lock_file(outdir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    t0 = time.monotonic()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("dialsflow: %s: another task is ingesting this unit; waiting for it", key)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield time.monotonic() - t0
    finally:
        os.close(fd)  # releases the lock
