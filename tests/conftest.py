"""Shared fixtures: a real emulator process on a free port, reached over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dialsflow_emulator.process import EmulatorProcess


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorProcess]:
    """The demo world (seed 1) at its default clock; tests must not move its clock."""
    with EmulatorProcess(profile="demo", seed=1) as emu:
        yield emu


@pytest.fixture(scope="session")
def truth(emulator: EmulatorProcess) -> dict:
    return emulator.truth()
