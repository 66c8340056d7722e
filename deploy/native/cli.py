"""`python -m deploy.native start | status | restart | stop` (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import requests

from . import __doc__ as PACKAGE_DOC
from .deployment import DEFAULT_HOME, PG, ROOT, DeployError, Deployment
from .lifecycle import COMPONENTS, POOL, restart_component, say, start, stop_deployment
from .processes import group_alive
from .resources import drop_database


def stop(args: argparse.Namespace) -> None:
    home = Path(args.home).resolve()
    dep = Deployment.load(home)
    if dep is None:
        say(args, f"no deployment in {home}")
        return
    killed = stop_deployment(dep, grace=args.grace)
    if killed:
        say(args, f"killed after {args.grace:.0f} s: {', '.join(killed)}")
    if args.drop_db or args.purge:
        drop_database(dep.db, port=dep.pg_port)
    if args.purge:
        shutil.rmtree(home)
    say(args, f"stopped {home}" + (" (database dropped)" if args.drop_db or args.purge else ""))


def restart(args: argparse.Namespace) -> None:
    dep = Deployment.load(Path(args.home).resolve())
    if dep is None or not dep.procs:
        raise DeployError(f"no running deployment in {Path(args.home).resolve()}")
    new = restart_component(dep, args.component, kill=args.kill, grace=args.grace)
    say(args, f"{args.component} restarted (pid {new.pid})")


def status(args: argparse.Namespace) -> int:
    dep = Deployment.load(Path(args.home).resolve())
    if dep is None or not dep.procs:
        print(f"not running ({Path(args.home).resolve()})")
        return 1
    broker = f"redis-db={dep.redis_db}" if dep.redis_db is not None else "no broker"
    print(f"{dep.url}  {dep.executor} executor  db={dep.db}  {broker}  home={dep.home}")
    up = True
    for p in dep.procs:
        alive = group_alive(p)
        up &= alive
        print(f"  {p.name:14} pid {p.pid:<8} {'running' if alive else 'DEAD':8} {p.log}")
    try:
        print(json.dumps(requests.get(f"{dep.url}/api/v2/monitor/health", timeout=3).json()))
    except (requests.RequestException, ValueError) as exc:
        print(f"  health: unreachable ({exc})")
        up = False
    return 0 if up else 1


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m deploy.native",
                                 description=PACKAGE_DOC.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", default=os.environ.get("DIALSFLOW_DEPLOY_HOME", DEFAULT_HOME),
                      help="AIRFLOW_HOME of the deployment: state, secrets, logs (default "
                           ".airflow/deploy/ or $DIALSFLOW_DEPLOY_HOME)")
    home.add_argument("--quiet", action="store_true")
    s = sub.add_parser("start", parents=[home], help="create a fresh DB and start everything")
    s.add_argument("--db", default="dialsflow_airflow", help="PostgreSQL database (recreated)")
    s.add_argument("--keep-db", action="store_true", help="reuse the database if it exists")
    s.add_argument("--pg-port", type=int, default=int(os.environ.get("DIALSFLOW_PG_PORT",
                                                                        PG["port"])),
                   help="PostgreSQL port on 127.0.0.1 (default 5432 or $DIALSFLOW_PG_PORT)")
    s.add_argument("--executor", choices=("celery", "local"), default="celery",
                   help="celery: Redis broker + Celery worker, as in production (default); "
                        "local: LocalExecutor, tasks run by the scheduler's own workers")
    s.add_argument("--redis-db", default="auto", help="Redis DB number, or auto (first free)")
    s.add_argument("--port", type=int, default=8080, help="api-server port (0 = any free)")
    s.add_argument("--host", default="127.0.0.1", help="api-server bind address")
    s.add_argument("--worker-log-port", type=int, default=0, help="0 = any free port")
    s.add_argument("--trigger-log-port", type=int, default=0, help="0 = any free port")
    s.add_argument("--dags", default=str(ROOT / "dags"), help="DAGs folder")
    s.add_argument("--jobs-file", help="DIALSFLOW_JOBS_FILE (default: the caller's, else "
                                       "the demo's include/jsons/jobs.json)")
    s.add_argument("--output", help="DIALSFLOW_OUTPUT_ROOT (default HOME/output)")
    s.add_argument("--pool-slots", type=int, default=2, help=f"slots of the {POOL} pool")
    s.add_argument("--worker-concurrency", type=int, default=4,
                   help="task slots: Celery worker concurrency, or LocalExecutor parallelism")
    s.add_argument("--connections-env", help="env file with AIRFLOW_CONN_* lines")
    s.add_argument("--emulator", action="store_true",
                   help="start a dialsflow emulator and use its connections")
    s.add_argument("--emulator-port", type=int, default=0)
    s.add_argument("--emulator-profile", default="demo")
    s.add_argument("--emulator-arg", action="append", default=[],
                   help="extra `dialsflow-emulator serve` argument (repeatable)")
    s.add_argument("--env", action="append", default=[], help="KEY=VALUE for every component")
    s.add_argument("--admin-password", help="default: random, written to HOME/passwords.json")
    s.add_argument("--fast", action=argparse.BooleanOptionalAction, default=True,
                   help="short DAG-parsing and scheduler intervals (default on)")
    s.add_argument("--timeout", type=float, default=180, help="seconds to become healthy")
    t = sub.add_parser("stop", parents=[home], help="stop every process of the deployment")
    t.add_argument("--grace", type=float, default=30, help="seconds between SIGTERM and SIGKILL")
    t.add_argument("--drop-db", action="store_true", help="drop its PostgreSQL database")
    t.add_argument("--purge", action="store_true", help="--drop-db and delete the home folder")
    sub.add_parser("status", parents=[home], help="processes and API health")
    r = sub.add_parser("restart", parents=[home], help="stop one component and start it again")
    r.add_argument("component", choices=COMPONENTS)
    r.add_argument("--kill", action="store_true",
                   help="SIGKILL its whole process tree (a crash) instead of SIGTERM")
    r.add_argument("--grace", type=float, default=30, help="seconds before SIGKILL")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "start":
            start(args)
        elif args.command == "stop":
            stop(args)
        elif args.command == "restart":
            restart(args)
        else:
            return status(args)
    except DeployError as exc:
        print(f"deploy-local: {exc}", file=sys.stderr)
        return 2
    return 0
