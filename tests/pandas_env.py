"""A pandas to run users' loaders with, outside the development venv (where cmsdials would
import pandas in every process): the pinned pandas (requirements-bench.txt) installed once
with uv into .cache/ and put on PYTHONPATH of a subprocess of the venv's Python, whose numpy,
pyarrow, dateutil and tzdata it uses."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pandas_pin() -> str:
    text = (ROOT / "requirements-bench.txt").read_text()
    m = re.search(r"^pandas==(\S+)", text, re.MULTILINE)
    assert m, "requirements-bench.txt pins no pandas"
    return m[1]


def pandas_path() -> Path:
    """The folder holding the pinned pandas, installed on first use (from uv's cache after
    that: well under a second)."""
    target = ROOT / ".cache" / f"pandas-{pandas_pin()}"
    if (target / "pandas").is_dir():
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    uv = Path(sys.executable).parent / "uv"
    subprocess.run([str(uv), "pip", "install", "-q", "--python", sys.executable, "--target",
                    str(tmp), "--no-deps", f"pandas=={pandas_pin()}"], check=True, timeout=600)
    try:
        tmp.rename(target)
    except OSError:  # another process got there first
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return target


def run_with_pandas(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pandas_path())}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=300)
