"""`dialsflow-emulator truth | env | serve` as a user runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson

from dialsflow.config.connections import CONN_IDS, DialsSettings, from_env
from dialsflow_emulator.process import EmulatorProcess, port_in_use

BIN = Path(sys.executable).parent


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dialsflow-emulator"), *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_truth_prints_the_world_as_json():
    out = _run("truth", "--profile", "demo", "--seed", "3")
    assert out.returncode == 0, out.stderr
    world = orjson.loads(out.stdout)
    assert world["profile"] == "demo" and world["seed"] == 3
    assert world["runs"] and world["datasets"]


def test_truth_with_a_later_clock_has_more_in_dials():
    early = orjson.loads(_run("truth", "--now", "2024-04-19T00:00:00Z").stdout)
    late = orjson.loads(_run("truth", "--now", "2024-05-10T00:00:00Z").stdout)

    def in_dials(t: dict) -> int:
        return sum(v["in_dials"] for d in t["datasets"] for v in d["runs"].values())

    assert in_dials(early) < in_dials(late)


def test_env_prints_the_four_connections_dialsflow_reads():
    out = _run("env", "--port", "9999")
    assert out.returncode == 0
    lines = [line for line in out.stdout.splitlines() if line.startswith("export AIRFLOW_CONN_")]
    assert len(lines) == 4
    # Evaluate the lines in a real shell, then read them the way the CLI and DAG do.
    shell = subprocess.run(["bash", "-c", out.stdout + "\nenv"], capture_output=True, text=True,
                           check=True)
    env = dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)
    conns = {cid: from_env(cid, env) for cid in CONN_IDS}
    assert all(conns.values())
    dials = DialsSettings.from_connection(conns["dials_default"])
    assert dials.base_url == "http://127.0.0.1:9999/"
    assert dials.workspace == "tracker" and dials.auth == "client_credentials"
    assert conns["caf_default"].extra == {"class": "Collisions24", "kind": "golden",
                                          "verify": True}


def test_serve_rejects_bad_flags_with_one_line():
    for flags in (["--fault-kinds", "boom"], ["--fault-rate", "2"], ["--client", "nosecret"],
                  ["--server-workers", "0"], ["--gateway-timeout-s", "0"],
                  ["--server-ms-per-mb", "-1"], ["--server-base-ms", "nan"]):
        out = _run("serve", "--port", "1", *flags)
        assert out.returncode == 2
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "Traceback" not in out.stderr


def test_serve_flags_set_the_dials_server_model():
    flags = ("--server-workers", "4", "--gateway-timeout-s", "12", "--server-ms-per-mb", "200",
             "--server-base-ms", "30", "--no-gzip")
    with EmulatorProcess(*flags) as emu:
        assert emu.server() == {"workers": 4, "gateway_timeout_s": 12.0, "ms_per_mb": 200.0,
                                "base_ms": 30.0, "gzip": False}


def test_dialsflow_connections_masks_secrets(emulator):
    env = {**os.environ}
    for cid, conn in emulator.connections().items():
        env[f"AIRFLOW_CONN_{cid.upper()}"] = orjson.dumps(conn).decode()
    out = subprocess.run([str(BIN / "dialsflow"), "connections"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0
    assert "password=***" in out.stdout
    assert emulator.connections()["dials_default"]["password"] not in out.stdout


def test_env_as_dotenv_is_what_an_env_file_holds():
    """`--format dotenv`: KEY=VALUE lines, JSON unquoted, as in deploy/connections.env."""
    out = _run("env", "--port", "9999", "--format", "dotenv")
    assert out.returncode == 0, out.stderr
    env = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert env["DIALSFLOW_EMULATOR_URL"] == "http://127.0.0.1:9999"
    conns = {cid: from_env(cid, env) for cid in CONN_IDS}
    assert all(conns.values())
    dials = DialsSettings.from_connection(conns["dials_default"])
    assert dials.base_url == "http://127.0.0.1:9999/"


def test_serve_on_a_busy_port_is_one_line_naming_it_and_how_to_change_it():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        out = _run("serve", "--port", str(port))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (f"dialsflow-emulator: error: port {port} on 127.0.0.1 is "
                                  f"already in use; choose another with --port (make emulator "
                                  f"PORT={port + 1})")
    assert not port_in_use("127.0.0.1", port)  # closed: free again
