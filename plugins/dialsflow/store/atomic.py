"""Atomic file publication: write beside the target, flush + fsync, rename, fsync the folder.

A reader (or a crash) sees either the old file or the new one, never a partial one. Temporary
names start with '.' so dataset readers skip them; leftovers of a killed process are removed
by `sweep_temporaries`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"


def temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}{TMP_SUFFIX}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def publishing(target: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes `target` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(target: Path, data: bytes) -> None:
    with publishing(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def sweep_temporaries(folder: Path) -> int:
    """Remove temporary files left by killed writers; returns how many. A file whose writer
    is a live process of this host is left alone (its name carries the writer's PID)."""
    removed = 0
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(".") and p.name.endswith(TMP_SUFFIX) \
                    and not _writer_alive(p.name):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed += 1
    return removed


def _writer_alive(name: str) -> bool:
    pid = name[: -len(TMP_SUFFIX)].rsplit(".", 1)[-1]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True
