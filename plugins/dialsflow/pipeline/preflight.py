"""Before a night starts: every connection usable and every service answering.

A typo in a connection or an unreachable service then fails the first task with one line,
instead of every mapped task of the night with the same error.
"""

from __future__ import annotations

from collections.abc import Mapping

import requests

from dialsflow.config.connections import DbsSettings, DialsSettings, ServiceConnection
from dialsflow.config.jobs import Job
from dialsflow.errors import InputError, ServiceError
from dialsflow.services.dbs import DbsClient
from dialsflow.services.dials import DialsClient
from dialsflow.services.http import describe_error


def preflight(jobs: list[Job], conns: Mapping[str, ServiceConnection]) -> None:
    """Every connection defined and every service answering, before work is split: a typo
    in a connection fails this first task with one line instead of every mapped task."""
    settings = DialsSettings.from_connection(conns["dials_default"])
    client = DialsClient(settings)  # obtains a token: wrong credentials fail here
    try:
        known = client.get_json("workspaces/", what="DIALS workspaces")["workspaces"]
    finally:
        client.close()
    for job in jobs:
        if job.workspace not in known:
            raise InputError(f"job {job.name!r}: DIALS has no workspace {job.workspace!r}; "
                             f"known: {', '.join(known)}")
    dbs = DbsClient(DbsSettings.from_connection(conns["dbs_default"]))  # proxy file exists?
    dbs.close()
    dbs_cert = dbs.settings.cert  # cmsweb wants it even to answer
    for conn_id in ("oms_default", "dbs_default", "caf_default"):
        conn = conns[conn_id]
        try:
            requests.get(conn.host, timeout=20, verify=conn.verify(),
                         cert=dbs_cert if conn_id == "dbs_default" else None)
        except requests.RequestException as exc:
            raise ServiceError(f"cannot reach {conn.host} ({conn_id}): {describe_error(exc)}; "
                               "check the connection's host") from None
