"""The manifest: an entry vouches for a run only with its file there at the recorded size."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dialsflow.store.layout import UnitKey, manifest_file, run_file
from dialsflow.store.manifest import Manifest, RunEntry

KEY = UnitKey("tracker", "/ZeroBias/Run2024C-PromptReco-v1/DQMIO", "PixelPhase1/a/b")


def entry(run: int, size: int = 4, complete: bool = True) -> RunEntry:
    return RunEntry(KEY.workspace, KEY.dataset, 7, KEY.me, 3, 1, run, 2, [[1, 2]], size,
                    "0" * 64, "2024-04-25T03:00:00Z", complete)


def with_file(tmp_path: Path, run: int, data: bytes = b"abcd") -> None:
    path = run_file(tmp_path, KEY, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_entries_round_trip_and_list_in_run_order(tmp_path: Path):
    manifest = Manifest(tmp_path)
    for run in (12, 3):
        manifest.record(entry(run))
    assert manifest.get(KEY, 3) == entry(3)
    assert manifest.get(KEY, 4) is None
    assert [e.run for e in manifest.entries(KEY)] == [3, 12]
    assert manifest_file(tmp_path, KEY, 3).is_file()
    assert entry(3).ls_numbers == [1, 2] and entry(3).key == KEY


def test_complete_needs_a_complete_entry_and_the_file_at_its_size(tmp_path: Path):
    manifest = Manifest(tmp_path)
    manifest.record(entry(1))
    assert not manifest.is_complete(KEY, 1)  # no file
    with_file(tmp_path, 1)
    assert manifest.is_complete(KEY, 1)
    with_file(tmp_path, 1, b"abc")  # truncated behind our back
    assert not manifest.is_complete(KEY, 1)
    with_file(tmp_path, 2)
    manifest.record(replace(entry(2), complete=False))  # --test output
    assert not manifest.is_complete(KEY, 2)


def test_forget_drops_the_entry_before_a_file_is_replaced(tmp_path: Path):
    manifest = Manifest(tmp_path)
    manifest.record(entry(5))
    with_file(tmp_path, 5)
    manifest.forget(KEY, 5)
    assert manifest.get(KEY, 5) is None and not manifest.is_complete(KEY, 5)
    manifest.forget(KEY, 5)  # idempotent


def test_complete_runs_of_a_unit_in_one_pass_agree_with_is_complete(tmp_path: Path):
    manifest = Manifest(tmp_path)
    assert manifest.complete_runs(KEY) == set()
    for run in (1, 2, 3, 4):
        manifest.record(entry(run, complete=run != 3))
    for run in (1, 3, 4, 5):  # 2: no file; 5: no entry
        with_file(tmp_path, run, b"abcd" if run != 4 else b"abc")  # 4: wrong size
    assert manifest.complete_runs(KEY) == {1}
    assert {r for r in range(1, 6) if manifest.is_complete(KEY, r)} == {1}
    manifest.record(replace(entry(4), bytes=3, certification="Cert_x_Golden.json",
                            upstream_stuck=True))
    assert manifest.complete_runs(KEY) == {1, 4}
    assert manifest.get(KEY, 4).certification == "Cert_x_Golden.json"
    assert manifest.get(KEY, 4).upstream_stuck
