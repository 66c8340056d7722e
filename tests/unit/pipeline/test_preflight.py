"""Preflight asks each service through its own client: services that answer pass, an
unreachable one is one line naming the connection and its host, and so is a DIALS whose
`workspaces/` answer is not of a shape we know."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from dialsflow.config.connections import CONN_IDS, ServiceConnection
from dialsflow.config.jobs import Job, load_jobs
from dialsflow.errors import InputError, ServiceError
from dialsflow.pipeline.preflight import preflight
from dialsflow_emulator.process import EmulatorProcess, free_port

from ...clients import connection
from ..services.test_dials import PageServer

JOBS_FILE = Path(__file__).resolve().parents[3] / "include/jsons/jobs.json"


@pytest.fixture
def jobs(monkeypatch, tmp_path) -> list[Job]:
    monkeypatch.setenv("DIALSFLOW_OUTPUT_ROOT", str(tmp_path))
    return list(load_jobs(JOBS_FILE).values())


def conns(emu: EmulatorProcess, **hosts: str) -> dict[str, ServiceConnection]:
    found = {conn_id: connection(emu, conn_id) for conn_id in CONN_IDS}
    return {conn_id: replace(conn, host=hosts.get(conn_id, conn.host))
            for conn_id, conn in found.items()}


@pytest.mark.parametrize("via", ["direct", "dials"])
def test_answering_services_pass(emulator, jobs, via):
    found = conns(emulator)
    found["oms_default"] = connection(emulator, "oms_default", via=via)
    preflight(jobs, found)


@pytest.mark.parametrize("conn_id", ["dials_default", "dbs_default", "oms_default",
                                     "caf_default"])
def test_unreachable_service_is_one_line(emulator, jobs, conn_id):
    dead = f"http://127.0.0.1:{free_port()}/nothing"
    with pytest.raises(ServiceError) as info:
        preflight(jobs, conns(emulator, **{conn_id: dead}))
    assert str(info.value) == (f"cannot reach {dead} ({conn_id}): connection refused; check "
                               "the connection's host")


def test_unknown_workspace_and_class_fail(emulator, jobs):
    with pytest.raises(InputError, match="DIALS has no workspace 'nope'"):
        preflight([replace(jobs[0], workspace="nope")], conns(emulator))
    job = replace(jobs[0], certification=replace(jobs[0].certification, cert_class="Nope99"))
    with pytest.raises(ServiceError, match=r"Nope99/ answered HTTP 404 \(no such class"):
        preflight([job], conns(emulator))


@pytest.fixture
def dials_server() -> Iterator[PageServer]:
    srv = PageServer(1)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def dials_only(srv: PageServer) -> dict[str, ServiceConnection]:
    """DIALS at `srv`; the other services are never reached when DIALS fails first."""
    dead = f"http://127.0.0.1:{free_port()}/"
    found = {conn_id: ServiceConnection(conn_id, dead) for conn_id in CONN_IDS}
    found["dials_default"] = ServiceConnection(
        "dials_default", srv.url, "id", "secret",
        {"keycloak_url": srv.url + "auth/", "workspace": "tracker"})
    return found


@pytest.mark.parametrize("body,error", [
    (b'{"workspaces": "tracker"}', ServiceError(
        "DIALS workspaces: expected a list of workspace names, {\"workspaces\": [names]} or "
        "an object keyed by name; got an object whose workspaces is a str: tracker")),
    (b"<html>Sign in</html>", ServiceError(
        "DIALS workspaces: DIALS answered HTTP 200 with something that is not JSON: HTML "
        "error page")),
    (b"[]", InputError("job 'demo_tracker': DIALS has no workspace 'tracker'; known: none")),
])
def test_surprising_workspaces_answer_is_one_line(jobs, dials_server, body, error):
    dials_server.workspaces_body = body
    with pytest.raises(type(error)) as info:
        preflight(jobs, dials_only(dials_server))
    assert str(info.value) == str(error)
