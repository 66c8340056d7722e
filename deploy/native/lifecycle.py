"""Start a deployment (database, pool, components until healthy), stop it, restart one
component with the environment it had."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from .deployment import ENV_FILE, STATE, DeployError, Deployment, Proc
from .emulator import start_emulator
from .env import airflow_env, read_env_file
from .processes import group_alive, kill_tree, signal_group, spawn, wait_for
from .resources import (
    check_port,
    claim_redis_db,
    free_port,
    fresh_database,
    release_redis_db,
    write_private,
)

POOL = "dials_api"  # must match dags/dials_ingest.py (tests/deploy checks it)
POOL_DESCRIPTION = "DIALS API concurrency"
#: stop order: nothing new is scheduled, then running tasks end, the API goes last (workers
#: report task states through its execution API)
COMPONENTS = ("scheduler", "triggerer", "dag-processor", "celery-worker", "api-server")
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def start(args: argparse.Namespace) -> Deployment:
    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    old = Deployment.load(home)
    if old and any(group_alive(p) for p in old.procs):
        raise DeployError(f"a deployment is already running from {home} ({old.url}); "
                          "`stop` it first or pass another --home")
    db = args.db
    if not _DB_NAME.fullmatch(db):
        raise DeployError(f"--db {db!r}: use lower-case letters, digits and '_'")
    port = args.port or free_port()
    worker_log_port = args.worker_log_port or free_port()
    trigger_log_port = args.trigger_log_port or free_port()
    for p, what in ((port, "api-server, --port"), (worker_log_port, "worker logs"),
                    (trigger_log_port, "triggerer logs")):
        check_port(p, what)
    dags = str(Path(args.dags).resolve())
    if not Path(dags).is_dir():
        raise DeployError(f"--dags {dags}: not a folder")
    redis_db = (claim_redis_db(str(args.redis_db), str(home)) if args.executor == "celery"
                else None)
    dep = Deployment(home=str(home), db=db, redis_db=redis_db, port=port,
                     worker_log_port=worker_log_port, trigger_log_port=trigger_log_port,
                     dags=dags, password_file=str(home / "passwords.json"),
                     started_at=time.time(), pg_port=args.pg_port, executor=args.executor)
    try:
        return _start(dep, args)
    except BaseException:
        stop_deployment(dep, grace=10)
        raise


def _start(dep: Deployment, args: argparse.Namespace) -> Deployment:
    home = Path(dep.home)
    logs = home / "process-logs"
    logs.mkdir(exist_ok=True)
    extra: dict[str, str] = {}
    if args.connections_env:
        extra.update(read_env_file(Path(args.connections_env)))
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            raise DeployError(f"--env {item!r}: expected KEY=VALUE")
        extra[key] = value
    if args.emulator:
        extra = {**start_emulator(dep, args, logs), **extra}
    if not Path(dep.password_file).exists():
        write_private(Path(dep.password_file),
                      json.dumps({"admin": args.admin_password or secrets.token_urlsafe(16)}))
    fresh_database(dep.db, keep=args.keep_db, port=dep.pg_port)
    env = airflow_env(dep, args, extra)
    write_private(home / ENV_FILE, json.dumps(env))  # secrets inside: mode 600
    airflow = str(Path(sys.executable).parent / "airflow")
    t0 = time.monotonic()
    for cmd in (["db", "migrate"], ["pools", "set", POOL, str(args.pool_slots), POOL_DESCRIPTION]):
        run = subprocess.run([airflow, *cmd], env=env, cwd=home, capture_output=True, text=True)
        (logs / "init.log").open("a").write(f"$ airflow {' '.join(cmd)}\n{run.stdout}{run.stderr}")
        if run.returncode:
            raise DeployError(f"airflow {' '.join(cmd)} failed ({run.returncode}):\n"
                              f"{(run.stdout + run.stderr)[-3000:]}")
    say(args, f"metadata DB {dep.db} migrated, pool {POOL}={args.pool_slots} "
              f"({time.monotonic() - t0:.0f} s)")
    commands = {
        "api-server": ["api-server", "--host", args.host, "--port", str(dep.port),
                       "--workers", "1"],
        "scheduler": ["scheduler"],
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer"],
        "celery-worker": ["celery", "worker", "--celery-hostname", f"{dep.db}@%h",
                          "--concurrency", str(args.worker_concurrency)],
    }
    if dep.executor != "celery":
        del commands["celery-worker"]
    dep.commands = {name: [airflow, *cmd] for name, cmd in commands.items()}
    for name in commands:
        dep.procs.append(spawn(name, dep.commands[name], env, logs, supervised=True))
        dep.save()
    wait_for(lambda: healthy(dep), args.timeout, "all components healthy", dep)
    say(args, f"Airflow up at {dep.url} in {time.monotonic() - t0:.0f} s (user admin, "
              f"password in {dep.password_file}); logs in {logs} and {home / 'logs'}")
    return dep


def healthy(dep: Deployment) -> bool:
    """API health says metadatabase, scheduler, triggerer and dag-processor are healthy,
    and the Celery worker (if any) logged that it is ready."""
    r = requests.get(f"{dep.url}/api/v2/monitor/health", timeout=3)
    if not r.ok:
        return False
    health = r.json()
    if any(health.get(k, {}).get("status") != "healthy"
           for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
        return False
    worker = next((p for p in dep.procs if p.name == "celery-worker"), None)
    if worker is None:
        return True
    with open(worker.log, "rb") as fh:
        fh.seek(worker.log_offset)
        return b" ready." in fh.read()


def stop_deployment(dep: Deployment, grace: float = 30.0) -> list[str]:
    """SIGTERM every recorded process group (in COMPONENTS order), wait up to `grace`
    seconds, SIGKILL what is left; release the Redis DB. Returns the names killed hard."""
    order = {name: i for i, name in enumerate(COMPONENTS)}
    procs = sorted(dep.procs, key=lambda p: order.get(p.name, len(order)))
    for p in procs:
        signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(group_alive(p) for p in procs):
        time.sleep(0.3)
    killed = [p.name for p in procs if group_alive(p)]
    for p in procs:
        signal_group(p, signal.SIGKILL)
    if dep.redis_db is not None:
        with contextlib.suppress(Exception):  # Redis being down must not block a stop
            release_redis_db(dep.redis_db, dep.home)
    dep.procs = []
    if (Path(dep.home) / STATE).exists() or Path(dep.home).is_dir():
        dep.save()
    return killed


def restart_component(dep: Deployment, name: str, *, kill: bool = False, grace: float = 30.0,
                      timeout: float = 120.0) -> Proc:
    """Stop one component (SIGTERM, or SIGKILL of its tree) and start it again with the
    environment `start` gave it; returns once it is up again (the worker: ready)."""
    old = next((p for p in dep.procs if p.name == name), None)
    if old is None or name not in dep.commands:
        raise DeployError(f"no component {name!r} in {dep.home}; known: "
                          f"{', '.join(dep.commands) or 'none (start it first)'}")
    if kill:
        kill_tree(old)
    else:
        signal_group(old, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(old):
        time.sleep(0.2)
    kill_tree(old)
    env = json.loads((Path(dep.home) / ENV_FILE).read_text())
    new = spawn(name, dep.commands[name], env, Path(old.log).parent, supervised=True)
    dep.procs = [new if p is old else p for p in dep.procs]
    dep.save()

    def up() -> bool:
        if name != "celery-worker":
            return healthy(dep)
        with open(new.log, "rb") as fh:
            fh.seek(new.log_offset)
            return b" ready." in fh.read()

    wait_for(up, timeout, f"{name} up again", dep)
    return new


def say(args: argparse.Namespace, text: str) -> None:
    """A progress line on stdout, unless --quiet."""
    if not getattr(args, "quiet", False):
        print(f"deploy-local: {text}", flush=True)
