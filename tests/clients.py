"""Our real clients pointed at an emulator process, built the way the DAG builds them."""

from __future__ import annotations

from dataclasses import replace

import orjson

from dialsflow.config.connections import (
    CafSettings,
    DialsSettings,
    OmsSettings,
    ServiceConnection,
    parse_connection,
)
from dialsflow.services.caf import CafClient
from dialsflow.services.dials import DialsClient
from dialsflow.services.oms import OmsRuns, oms_client
from dialsflow_emulator.process import EmulatorProcess


def connection(emu: EmulatorProcess, conn_id: str, **extra: object) -> ServiceConnection:
    data = emu.connections()[conn_id]
    data["extra"] = {**data["extra"], **extra}
    return parse_connection(conn_id, orjson.dumps(data).decode())


def dials_client(emu: EmulatorProcess, workspace: str = "tracker") -> DialsClient:
    settings = DialsSettings.from_connection(connection(emu, "dials_default"))
    return DialsClient(replace(settings, workspace=workspace))


def oms(emu: EmulatorProcess, via: str, dials: DialsClient | None = None) -> OmsRuns:
    settings = OmsSettings.from_connection(connection(emu, "oms_default", via=via))
    return oms_client(settings, dials or dials_client(emu))


def caf_client(emu: EmulatorProcess, cert_class: str = "Collisions24",
               kind: str = "golden", energy: str | None = None) -> CafClient:
    return CafClient(CafSettings.from_connection(
        connection(emu, "caf_default", **{"class": cert_class, "kind": kind})), energy=energy)
