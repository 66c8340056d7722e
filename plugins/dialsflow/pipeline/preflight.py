"""Before a night starts: every connection usable and every service answering.

A typo in a connection or an unreachable service then fails the first task with one line,
instead of every mapped task of the night with the same error. Each service is asked
through its own client, the way the night will ask it (same TLS, proxy, token, retries):
DIALS names its workspaces, DBS answers a reader query, OMS gives one run, CAF lists the
folder of every class/kind the jobs use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from dialsflow.config.connections import (
    CafSettings,
    DbsSettings,
    DialsSettings,
    OmsSettings,
    ServiceConnection,
)
from dialsflow.config.jobs import Job
from dialsflow.errors import InputError, ServiceError
from dialsflow.services.caf import CafClient
from dialsflow.services.dbs import DbsClient
from dialsflow.services.dials import DialsClient
from dialsflow.services.http import Unreachable
from dialsflow.services.oms import oms_client

T = TypeVar("T")


def preflight(jobs: list[Job], conns: Mapping[str, ServiceConnection]) -> None:
    """Every connection defined and every service answering, before work is split: a typo
    in a connection fails this first task with one line instead of every mapped task."""
    dials_conn = conns["dials_default"]
    # Obtains a token: wrong credentials fail here.
    with DialsClient(DialsSettings.from_connection(dials_conn)) as dials:
        known = _answer(dials_conn, dials.workspaces)
        for job in jobs:
            if job.workspace not in known:
                raise InputError(f"job {job.name!r}: DIALS has no workspace "
                                 f"{job.workspace!r}; known: {', '.join(known) or 'none'}")
        # A missing grid proxy file fails in the constructor, before any request.
        with DbsClient(DbsSettings.from_connection(conns["dbs_default"])) as dbs:
            _answer(conns["dbs_default"], dbs.ping)
        oms_settings = OmsSettings.from_connection(conns["oms_default"])
        with oms_client(oms_settings, dials) as oms:
            _answer(dials_conn if oms_settings.via == "dials" else conns["oms_default"],
                    oms.ping)
    caf_base = CafSettings.from_connection(conns["caf_default"])
    for settings in dict.fromkeys(job.caf_settings(caf_base) for job in jobs):
        with CafClient(settings) as caf:
            _answer(conns["caf_default"], caf.ping)


def _answer(conn: ServiceConnection, ask: Callable[[], T]) -> T:
    """`ask()`, a connection that cannot be made named by the connection's host."""
    try:
        return ask()
    except Unreachable as exc:
        raise ServiceError(f"cannot reach {conn.host} ({conn.conn_id}): {exc.cause}; "
                           "check the connection's host") from None
