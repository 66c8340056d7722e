"""One demo night with a planted failure, and an Airflow api-server showing it.

The night runs with `airflow dags test` into a SQLite metadata DB; the api-server then
serves that same DB, the task logs and the output tree, as in production where the
scheduler's runs and the UI share them. Users come from the simple auth manager's config
and a passwords file written here (what `airflow standalone` generates).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import requests

from dialsflow_emulator.process import EmulatorProcess, free_port
from localdev.airflow_home import LocalAirflow
from localdev.demo import NIGHT

from ..airflow_server import api_server

JOB = "demo_tracker"
#: The planted failure: DIALS answers 500 to every page of this ME (emulator `failing_me`).
FAILING_ME = "PXLayer_2$"
USERS = {"admin": ("admin", "admin-pw"), "viewer": ("viewer", "viewer-pw")}
#: The night takes ~15 s; once (full suite beside a Celery deployment) `dags test` went on
#: for 10 minutes after its run had ended: fail sooner, with what it printed.
NIGHT_TIMEOUT_S = 300


@dataclass
class Night:
    airflow: LocalAirflow
    output: Path
    run_id: str


@dataclass
class Server:
    url: str
    airflow: LocalAirflow

    def token(self, user: str) -> str:
        name, password = USERS[user]
        got = requests.post(f"{self.url}/auth/token", json={"username": name,
                                                            "password": password}, timeout=30)
        got.raise_for_status()
        return got.json()["access_token"]


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An emulator (the planted failure set) and an api-server on a fresh metadata DB."""
    base = tmp_path_factory.mktemp("ui")
    passwords = base / "passwords.json"
    passwords.write_bytes(orjson.dumps({name: pw for name, pw in USERS.values()}))
    users = ",".join(f"{name}:{role.upper()}" for role, (name, _) in USERS.items())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with EmulatorProcess("--now", NIGHT, log_path=base / "emulator.log") as emu:
        emu.set_faults(failing_me=FAILING_ME)
        airflow = LocalAirflow(base / "home", emu, base / "out", extra_env={
            "DIALSFLOW_RETRIES": "0",
            "AIRFLOW__API__PORT": str(port),
            # tasks run by the executor report to this api-server (task logs land in files)
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            # the executor's log servers: own ports, beside any other Airflow on the machine
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        }).setup()
        with api_server(airflow, port):
            yield Server(url, airflow)


@pytest.fixture(scope="package")
def night(server: Server) -> Night:
    """The demo night of one job, tasks run by the (local) executor as in production."""
    airflow = server.airflow
    try:
        result = airflow.airflow("dags", "test", "dials_ingest", NIGHT, "-c",
                                 orjson.dumps({"jobs": [JOB]}).decode(), "--use-executor",
                                 timeout=NIGHT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:  # what it printed says where it stopped
        printed = "".join(x.decode(errors="replace") if isinstance(x, bytes) else x or ""
                          for x in (exc.stdout, exc.stderr))
        pytest.fail(f"the night did not end within {NIGHT_TIMEOUT_S} s (it takes ~15 s); "
                    f"it printed last:\n{printed[-4000:]}")
    assert result.returncode == 1, _why(result, airflow)
    reports = list((airflow.output_root / JOB / "_reports").glob("*.json"))
    assert len(reports) == 1, _why(result, airflow)
    return Night(airflow, airflow.output_root, orjson.loads(reports[0].read_bytes())["run_id"])


def _why(result: subprocess.CompletedProcess, airflow: LocalAirflow) -> str:
    """The night's error and warning lines, then the api-server's: a task the executor
    could not start says why only there."""
    def pick(text: str) -> str:
        lines = text.splitlines()
        errors = [x for x in lines if any(w in x for w in ("[error", "ERROR", "Traceback"))]
        warnings = [x for x in lines if "[warning" in x and "No tasks to run" not in x]
        return "\n".join(errors[:20] + warnings[:20])

    served = airflow.home / "api-server.log"
    return (pick(result.stdout + result.stderr) + "\n--- api-server\n"
            + pick(served.read_text(errors="replace") if served.exists() else ""))
