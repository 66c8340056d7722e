"""Small file systems for tests of a full disk: a real tmpfs, so ENOSPC comes from the kernel."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def mount_tmpfs(size: str) -> Path:
    """A fresh folder with a tmpfs of `size` (e.g. "640k") mounted on it; needs root with
    mount rights, as CI has."""
    folder = Path(tempfile.mkdtemp(prefix="dialsflow-fs-"))
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                          str(folder)], capture_output=True, text=True)
    if out.returncode:
        folder.rmdir()
        pytest.fail(f"mount -t tmpfs failed (the suite needs root with mount rights, as CI "
                    f"has): {out.stderr.strip()}")
    return folder


def umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


@contextlib.contextmanager
def small_fs(size: str) -> Iterator[Path]:
    """`with small_fs("256k") as root: ...`: mounted for the block, unmounted after."""
    folder = mount_tmpfs(size)
    try:
        yield folder
    finally:
        umount(folder)
