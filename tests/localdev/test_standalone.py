"""`make airflow` (localdev.standalone) and `make emulator`: ports chosen on the command line,
and a busy port is one line naming it and how to change it, before anything starts."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from localdev.airflow_home import ROOT
from localdev.standalone import main


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on, on every interface (as Airflow's api-server would)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))  # noqa: S104
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize(("flag", "what", "variable"), [
    ("--port", "Airflow UI", "PORT"),
    ("--emulator-port", "emulator", "EMULATOR_PORT"),
])
def test_a_busy_port_is_one_line_and_nothing_starts(busy_port, tmp_path: Path, capsys, flag,
                                                     what, variable):
    home = tmp_path / "home"
    assert main(["--home", str(home), flag, str(busy_port)]) == 2
    err = capsys.readouterr().err
    assert err == (f"dialsflow: error: port {busy_port} ({what}) is already in use; choose "
                   f"another: make airflow {variable}={busy_port + 1} (here: {flag} "
                   f"{busy_port + 1})\n")
    assert not home.exists()  # no state, no emulator, no Airflow


def test_make_passes_the_ports_on():
    def recipe(*args: str) -> str:
        out = subprocess.run(["make", "-n", "-C", str(ROOT), *args], capture_output=True,
                             text=True, timeout=60, check=True)
        return " ".join(out.stdout.replace("\\\n", " ").split())

    assert "localdev.standalone --port 8081 --emulator-port 8766" in recipe(
        "airflow", "PORT=8081", "EMULATOR_PORT=8766")
    assert "localdev.standalone --port 8080 --emulator-port 8765" in recipe("airflow")
    assert "dialsflow-emulator serve --port 8767 " in recipe("emulator", "PORT=8767")
    assert "dialsflow-emulator serve --port 8765 " in recipe("emulator")
