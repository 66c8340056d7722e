"""`--emulator`: a dialsflow emulator beside the deployment, driven only through its CLI.

The deployment never imports the emulator: it starts `dialsflow-emulator serve` as one of
its processes and reads the connections from `dialsflow-emulator env --format dotenv`, the
same KEY=VALUE form as deploy/connections.env.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import requests

from .deployment import DeployError, Deployment
from .env import parse_env
from .processes import spawn, wait_for
from .resources import check_port, free_port

EMULATOR = Path(sys.executable).parent / "dialsflow-emulator"
HOST = "127.0.0.1"


def start_emulator(dep: Deployment, args: argparse.Namespace, logs: Path) -> dict[str, str]:
    """Serve the emulator as a process of `dep`, wait for its health; its connections."""
    port = args.emulator_port or free_port()
    check_port(port, "emulator, --emulator-port")
    emu = spawn("emulator", [str(EMULATOR), "serve", "--host", HOST, "--port", str(port),
                             "--profile", args.emulator_profile, *args.emulator_arg],
                {**os.environ, "PYTHONUNBUFFERED": "1", "AIRFLOW_HOME": dep.home}, logs)
    dep.procs.append(emu)
    dep.emulator_url = f"http://{HOST}:{port}"
    dep.save()
    wait_for(lambda: requests.get(f"{dep.emulator_url}/_emulator/health", timeout=2).ok,
             30, "emulator health", dep)
    return emulator_connections(port)


def emulator_connections(port: int) -> dict[str, str]:
    """AIRFLOW_CONN_* (and DIALSFLOW_EMULATOR_URL) for the emulator on HOST:port."""
    cmd = [str(EMULATOR), "env", "--host", HOST, "--port", str(port), "--format", "dotenv"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if out.returncode:
        raise DeployError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return parse_env(out.stdout, "dialsflow-emulator env")
