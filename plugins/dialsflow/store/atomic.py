"""Atomic file publication: write beside the target, flush + fsync, rename, fsync the folder.

A reader (or a crash) sees either the old file or the new one, never a partial one. Temporary
names start with '.' so dataset readers skip them; leftovers of a killed process are removed
by `sweep_temporaries`. A full disk (ENOSPC, or a quota: EDQUOT) is `DiskFull`: no later
file can be written either, so callers stop at the first one instead of failing file by file.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from dialsflow.errors import DialsflowError

TMP_SUFFIX = ".tmp"
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFull(DialsflowError):
    """The file system of a target is full: nothing more can be published there."""


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
    """Yield a temporary path to write; on success it becomes `target` atomically. A full
    disk, while writing or publishing, raises `DiskFull` naming `target`; the temporary file
    is removed whatever happens."""
    tmp = temp_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        if exc.errno in _FULL:
            raise DiskFull(f"cannot write {target}: {os.strerror(exc.errno)}") from None
        raise
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
