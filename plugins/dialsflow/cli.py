"""`dialsflow` command line. Subcommands: connections (more arrive with the ingestion core)."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .connections import CONN_IDS, ConnectionConfigError, from_env


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dialsflow",
                                description="DIALS monitoring elements to parquet.")
    p.add_argument("--version", action="version", version=f"dialsflow {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("connections",
                   help="show the connections read from AIRFLOW_CONN_* (secrets masked)")
    return p


def _connections() -> int:
    status = 0
    for conn_id in CONN_IDS:
        try:
            conn = from_env(conn_id)
        except ConnectionConfigError as exc:
            print(f"{conn_id}: error: {exc}")
            status = 1
            continue
        if conn is None:
            print(f"{conn_id}: not set (AIRFLOW_CONN_{conn_id.upper()})")
            continue
        login = f" login={conn.login}" if conn.login else ""
        secret = " password=***" if conn.password else ""
        print(f"{conn_id}: {conn.host}{login}{secret} extra={dict(conn.extra)}")
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "connections":
        return _connections()
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
