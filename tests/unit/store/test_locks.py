"""The unit lock: one writer per dataset × ME; others wait, then see its work."""

from __future__ import annotations

import threading
import time

from dialsflow.store.layout import UnitKey, lock_file
from dialsflow.store.locks import unit_lock

KEY = UnitKey("tracker", "/ZeroBias/Run2024C-PromptReco-v1/DQMIO", "a/b c+1")


def test_second_holder_waits_for_the_first(tmp_path):
    events: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with unit_lock(tmp_path, KEY):
            events.append("first in")
            first_holds.set()
            time.sleep(0.3)
            events.append("first out")

    t = threading.Thread(target=first)
    t.start()
    first_holds.wait()
    with unit_lock(tmp_path, KEY) as waited:
        events.append("second in")
    t.join()
    assert events == ["first in", "first out", "second in"]
    assert waited > 0


def test_other_units_do_not_wait_and_locks_stay_under_outdir(tmp_path):
    other = UnitKey("tracker", KEY.dataset, "another ME")
    got_other = threading.Event()

    def take_other() -> None:
        with unit_lock(tmp_path, other):
            got_other.set()

    with unit_lock(tmp_path, KEY):
        t = threading.Thread(target=take_other)
        t.start()
        assert got_other.wait(timeout=30)  # a lock on KEY does not hold back other units
    t.join()
    for key in (KEY, other):
        assert lock_file(tmp_path, key).resolve().is_relative_to(tmp_path / "_locks")
