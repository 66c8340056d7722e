"""Leftovers of killed writers are swept; files of live writers are not."""

from __future__ import annotations

import os
import subprocess
import sys

from dialsflow.store.atomic import sweep_temporaries, temp_path


def test_sweep_removes_dead_writers_temporaries_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    alive = str(os.getppid())  # the process that started pytest: alive while we run
    left = tmp_path / f".run_1.parquet.{dead}.tmp"
    busy = tmp_path / f".run_2.parquet.{alive}.tmp"
    mine = temp_path(tmp_path / "run_3.parquet")  # this process, not writing any more
    kept = tmp_path / "run_4.parquet"
    for p in (left, busy, mine, kept):
        p.write_bytes(b"x")
    assert sweep_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([busy.name, kept.name])
