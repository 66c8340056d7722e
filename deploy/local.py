"""The production topology (docker-compose.yaml) natively, without Docker: for developers and tests.

    .venv/bin/python deploy/local.py start  [--home DIR] [--db NAME] [--redis-db N|auto]
                                            [--executor celery|local] [--port 8080]
                                            [--dags DIR] [--emulator] ...
    .venv/bin/python deploy/local.py status [--home DIR]
    .venv/bin/python deploy/local.py restart COMPONENT [--home DIR] [--kill]
    .venv/bin/python deploy/local.py stop   [--home DIR] [--drop-db] [--purge]

Same components as the compose file (api-server, scheduler, dag-processor, triggerer, one
Celery worker; PostgreSQL metadata DB; Redis broker; Celery results in PostgreSQL), each a
background process in its own process group with a log file and a recorded PID, so `stop`
ends exactly what `start` began. Everything a deployment owns is named by its home folder:
its database, its Redis database (claimed with a key, so two deployments never share one),
its ports (refused when busy), its secrets and admin password (files in the home, mode 600).
A test can therefore run one beside a developer's without either noticing.
`--executor local` runs the same on the LocalExecutor: no broker and no Celery worker, the
scheduler runs tasks in its own worker processes (a single-host deployment).
Each component runs under `supervise`, compose's `restart: always` natively: when it exits
by itself (the scheduler, dag-processor and triggerer exit on a lost PostgreSQL connection,
e.g. a database restart) it is started again after a backoff. `restart` stops one
component (SIGTERM, or SIGKILL of its whole process tree with --kill) and starts it again
with the environment it had.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from dialsflow_emulator.cli import connection_env
from dialsflow_emulator.process import free_port

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOME = ROOT / ".airflow-local"  # git-ignored (/.airflow*/)
POOL = "dials_api"  # must match dags/dials_ingest.py (tests/deploy checks it)
POOL_DESCRIPTION = "DIALS API concurrency"
STATE = "deployment.json"
ENV_FILE = "component-env.json"  # the components' environment (secrets inside), for restart
REDIS_CLAIM = "dialsflow:deployment"  # key marking a Redis DB as owned by one deployment home
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS = ("127.0.0.1", 6379)
#: stop order: nothing new is scheduled, then running tasks end, the API goes last (workers
#: report task states through its execution API)
COMPONENTS = ("scheduler", "triggerer", "dag-processor", "celery-worker", "api-server")
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
FAST_ENV = {  # seconds instead of minutes: new DAG files and runs are picked up quickly
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
}


class DeployError(Exception):
    """A deployment cannot start or stop as asked; the message says why and what to do."""


@dataclass
class Proc:
    name: str
    pid: int
    start_ticks: int  # /proc/<pid>/stat starttime: tells our process from a reused PID
    log: str
    log_offset: int = 0  # size of the log when this process started


@dataclass
class Deployment:
    home: str
    db: str
    redis_db: int | None  # None with the LocalExecutor (no broker)
    port: int
    worker_log_port: int
    trigger_log_port: int
    dags: str
    password_file: str
    started_at: float = 0.0
    emulator_url: str | None = None
    procs: list[Proc] = field(default_factory=list)
    pg_port: int = PG["port"]
    #: component → argv, so `restart` starts it again exactly as `start` did
    commands: dict[str, list[str]] = field(default_factory=dict)
    executor: str = "celery"  # celery (production) | local (one host, no broker)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_password(self) -> str:
        return json.loads(Path(self.password_file).read_text())["admin"]

    def save(self) -> None:
        path = Path(self.home) / STATE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, home: str | Path) -> Deployment | None:
        path = Path(home) / STATE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        data["procs"] = [Proc(**p) for p in data.get("procs", [])]
        return cls(**data)


# ---- processes ------------------------------------------------------------------------------


def _stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_ticks(pid: int) -> int | None:
    """Process start time in clock ticks since boot; None when the PID is gone or a zombie
    (reaped here when it is our child, as in `start`)."""
    stat = _stat(pid)
    if stat is None:
        return None
    if stat[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return None
    return int(stat[19])


def _group_alive(proc: Proc) -> bool:
    """True while any process of our group runs (the leader may have exited before its
    children); False when the PID now belongs to someone else."""
    ticks = _start_ticks(proc.pid)
    if ticks is not None:
        return ticks == proc.start_ticks
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _stat(entry.name)
        if stat is not None and stat[0] != "Z" and stat[2] == str(proc.pid):
            return True
    return False


def _signal_group(proc: Proc, sig: int) -> None:
    if _group_alive(proc):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


RESTART_MARK = "deploy-local: restart policy:"


def _spawn(name: str, cmd: list[str], env: dict[str, str], logs: Path, *,
           supervised: bool = False) -> Proc:
    """Start `cmd` in a process group of its own, output appended to logs/<name>.log;
    `supervised`: under `supervise` (restarted whenever it exits by itself)."""
    log = logs / f"{name}.log"
    if supervised:
        cmd = [sys.executable, str(Path(__file__).resolve()), "supervise", name, "--", *cmd]
    with open(log, "ab") as out:
        offset = out.tell()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, cwd=env["AIRFLOW_HOME"], start_new_session=True)
    return Proc(name, p.pid, _start_ticks(p.pid) or 0, str(log), offset)


def supervise(name: str, cmd: list[str]) -> int:
    """Compose's `restart: always`, natively: run `cmd` (same process group, same output)
    and start it again whenever it exits by itself, after 1 s doubling up to 30 s (back to
    1 s once it ran a minute). SIGTERM/SIGINT of the group (what `stop` sends) end the loop;
    the component gets the signal itself as a member of the group."""
    stopping = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    delay = 1.0
    while True:
        began = time.monotonic()
        code = subprocess.Popen(cmd).wait()
        if stopping:
            return code
        if time.monotonic() - began > 60:
            delay = 1.0
        print(f"{RESTART_MARK} {name} exited with code {code}; starting it again in "
              f"{delay:.0f} s", flush=True)
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping:
            return code
        delay = min(delay * 2, 30.0)


def _restarted(proc: Proc) -> bool:
    """Whether the restart policy had to start the component again since `proc` began."""
    try:
        with open(proc.log, "rb") as fh:
            fh.seek(proc.log_offset)
            return RESTART_MARK.encode() in fh.read()
    except OSError:
        return False


def _tail(path: str, lines: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---- resources a deployment owns ------------------------------------------------------------


def _check_port(port: int, what: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))  # noqa: S104 - only probing whether the port is taken
        except OSError:
            raise DeployError(f"port {port} ({what}) is in use: another deployment or "
                              "program has it; pick another with the matching flag") from None


def _pg(dbname: str = "postgres", port: int = PG["port"]):
    import psycopg2

    conn = psycopg2.connect(dbname=dbname, **{**PG, "port": port})
    conn.autocommit = True
    return conn


def _fresh_database(db: str, keep: bool, port: int = PG["port"]) -> None:
    """Drop and recreate `db`, refusing when anything is connected to it (in use)."""
    with contextlib.closing(_pg(port=port)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (db,))
        if cur.fetchone()[0]:
            raise DeployError(f"database {db!r} has open connections: another deployment uses "
                              "it; stop that one or pass --db with another name")
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
        exists = cur.fetchone() is not None
        if exists and keep:
            return
        if exists:
            cur.execute(f'DROP DATABASE "{db}"')
        cur.execute(f'CREATE DATABASE "{db}"')


def _drop_database(db: str, port: int = PG["port"]) -> None:
    with contextlib.closing(_pg(port=port)) as conn, conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _redis(db: int):
    import redis

    return redis.Redis(host=REDIS[0], port=REDIS[1], db=db, socket_timeout=5)


def _claim_redis_db(wanted: str, home: str) -> int:
    """Claim a Redis DB for this home: `auto` takes the first empty one of 1..15 (0 is left
    to ad-hoc use); a number must be empty or already ours."""
    candidates = range(1, 16) if wanted == "auto" else [int(wanted)]
    for n in candidates:
        r = _redis(n)
        owner = r.get(REDIS_CLAIM)
        if owner is not None and owner.decode() == home:
            return n
        if owner is None and r.dbsize() == 0 and r.set(REDIS_CLAIM, home, nx=True):
            return n
        if wanted != "auto":
            who = owner.decode() if owner else "unknown (keys without a claim)"
            raise DeployError(f"Redis DB {n} is in use by {who}; pass --redis-db auto or "
                              "another number")
    raise DeployError("no free Redis DB among 1..15: stop other deployments")


def _release_redis_db(n: int, home: str) -> None:
    r = _redis(n)
    owner = r.get(REDIS_CLAIM)
    if owner is not None and owner.decode() == home:
        r.flushdb()  # Celery queues and results of this deployment only


def _secrets(home: Path) -> dict[str, str]:
    """Per-deployment secrets, kept across restarts (the Fernet key must outlive them when
    --keep-db reuses the database); never printed."""
    path = home / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    from cryptography.fernet import Fernet

    values = {"AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
              "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
              "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode()}
    _write_private(path, json.dumps(values))
    return values


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as docker compose's env_file reads them (quotes around a value are
    removed, # starts a comment line)."""
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise DeployError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


# ---- start / stop / status ------------------------------------------------------------------


def airflow_env(dep: Deployment, args: argparse.Namespace, extra: dict[str, str]) -> dict[str, str]:
    """The environment every component gets: the compose file's common env, for this host."""
    pg = f"postgres@{PG['host']}:{dep.pg_port}/{dep.db}"
    home = Path(dep.home)
    # the caller's Airflow *configuration* must not leak in (a test session's AIRFLOW_HOME,
    # unit-test mode); connections and variables exported by the caller are kept
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")
           or k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": dep.dags,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{dep.url}/execution/",
        "AIRFLOW__API__PORT": str(dep.port),
        "AIRFLOW__API__BASE_URL": dep.url,
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": dep.password_file,
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(dep.worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(dep.trigger_log_port),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",  # 2 shared cores
        "DIALSFLOW_OUTPUT_ROOT": str(Path(args.output or home / "output").resolve()),
    })
    if dep.executor == "celery":
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{dep.redis_db}",
            # explicit driver: SQLAlchemy 2.1 takes postgresql:// as psycopg 3, not installed
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(args.worker_concurrency),
        })
    else:  # the scheduler runs the tasks itself, in this many worker processes
        env.update({"AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "AIRFLOW__CORE__PARALLELISM": str(args.worker_concurrency)})
    if args.jobs_file:
        env["DIALSFLOW_JOBS_FILE"] = str(Path(args.jobs_file).resolve())
    env.update(_secrets(home))
    if args.fast:
        env.update(FAST_ENV)
    env.update(extra)
    return env


def start(args: argparse.Namespace) -> Deployment:
    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    old = Deployment.load(home)
    if old and any(_group_alive(p) for p in old.procs):
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
        _check_port(p, what)
    dags = str(Path(args.dags).resolve())
    if not Path(dags).is_dir():
        raise DeployError(f"--dags {dags}: not a folder")
    redis_db = (_claim_redis_db(str(args.redis_db), str(home)) if args.executor == "celery"
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
        eport = args.emulator_port or free_port()
        _check_port(eport, "emulator, --emulator-port")
        emu = _spawn("emulator", [str(Path(sys.executable).parent / "dialsflow-emulator"),
                                  "serve", "--host", "127.0.0.1", "--port", str(eport),
                                  "--profile", args.emulator_profile, *args.emulator_arg],
                     {**os.environ, "PYTHONUNBUFFERED": "1", "AIRFLOW_HOME": str(home)}, logs)
        dep.procs.append(emu)
        dep.emulator_url = f"http://127.0.0.1:{eport}"
        dep.save()
        _wait(lambda: requests.get(f"{dep.emulator_url}/_emulator/health", timeout=2).ok,
              30, "emulator health", dep)
        extra = {**connection_env("127.0.0.1", eport), **extra}
    if not Path(dep.password_file).exists():
        _write_private(Path(dep.password_file),
                       json.dumps({"admin": args.admin_password or secrets.token_urlsafe(16)}))
    _fresh_database(dep.db, keep=args.keep_db, port=dep.pg_port)
    env = airflow_env(dep, args, extra)
    _write_private(home / ENV_FILE, json.dumps(env))  # secrets inside: mode 600
    airflow = str(Path(sys.executable).parent / "airflow")
    t0 = time.monotonic()
    for cmd in (["db", "migrate"], ["pools", "set", POOL, str(args.pool_slots), POOL_DESCRIPTION]):
        run = subprocess.run([airflow, *cmd], env=env, cwd=home, capture_output=True, text=True)
        (logs / "init.log").open("a").write(f"$ airflow {' '.join(cmd)}\n{run.stdout}{run.stderr}")
        if run.returncode:
            raise DeployError(f"airflow {' '.join(cmd)} failed ({run.returncode}):\n"
                              f"{(run.stdout + run.stderr)[-3000:]}")
    _say(args, f"metadata DB {dep.db} migrated, pool {POOL}={args.pool_slots} "
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
        dep.procs.append(_spawn(name, dep.commands[name], env, logs, supervised=True))
        dep.save()
    _wait(lambda: _healthy(dep), args.timeout, "all components healthy", dep)
    _say(args, f"Airflow up at {dep.url} in {time.monotonic() - t0:.0f} s (user admin, "
               f"password in {dep.password_file}); logs in {logs} and {home / 'logs'}")
    return dep


def _healthy(dep: Deployment) -> bool:
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


def _wait(check: Any, timeout: float, what: str, dep: Deployment) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in dep.procs:
            if not _group_alive(p) or _restarted(p):
                raise DeployError(f"{p.name} exited while waiting for {what}; its log "
                                  f"{p.log} ends:\n{_tail(p.log)}")
        with contextlib.suppress(requests.RequestException, OSError, ValueError):
            if check():
                return
        time.sleep(1)
    tails = "\n".join(f"--- {p.name} ({p.log})\n{_tail(p.log, 8)}" for p in dep.procs)
    raise DeployError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def stop_deployment(dep: Deployment, grace: float = 30.0) -> list[str]:
    """SIGTERM every recorded process group (in COMPONENTS order), wait up to `grace`
    seconds, SIGKILL what is left; release the Redis DB. Returns the names killed hard."""
    order = {name: i for i, name in enumerate(COMPONENTS)}
    procs = sorted(dep.procs, key=lambda p: order.get(p.name, len(order)))
    for p in procs:
        _signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(p) for p in procs):
        time.sleep(0.3)
    killed = [p.name for p in procs if _group_alive(p)]
    for p in procs:
        _signal_group(p, signal.SIGKILL)
    if dep.redis_db is not None:
        with contextlib.suppress(Exception):  # Redis being down must not block a stop
            _release_redis_db(dep.redis_db, dep.home)
    dep.procs = []
    if (Path(dep.home) / STATE).exists() or Path(dep.home).is_dir():
        dep.save()
    return killed


def stop(args: argparse.Namespace) -> None:
    home = Path(args.home).resolve()
    dep = Deployment.load(home)
    if dep is None:
        _say(args, f"no deployment in {home}")
        return
    killed = stop_deployment(dep, grace=args.grace)
    if killed:
        _say(args, f"killed after {args.grace:.0f} s: {', '.join(killed)}")
    if args.drop_db or args.purge:
        _drop_database(dep.db, port=dep.pg_port)
    if args.purge:
        shutil.rmtree(home)
    _say(args, f"stopped {home}" + (" (database dropped)" if args.drop_db or args.purge else ""))


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children that left its process group included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _stat(entry.name)
        if stat is not None and stat[0] != "Z":
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: Proc) -> None:
    """SIGKILL a component's process group and every descendant: a crash, not a stop."""
    if not _group_alive(proc):
        return
    victims = [proc.pid, *_descendants(proc.pid)]
    _signal_group(proc, signal.SIGKILL)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


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
        _signal_group(old, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(old):
        time.sleep(0.2)
    kill_tree(old)
    env = json.loads((Path(dep.home) / ENV_FILE).read_text())
    new = _spawn(name, dep.commands[name], env, Path(old.log).parent, supervised=True)
    dep.procs = [new if p is old else p for p in dep.procs]
    dep.save()

    def up() -> bool:
        if name != "celery-worker":
            return _healthy(dep)
        with open(new.log, "rb") as fh:
            fh.seek(new.log_offset)
            return b" ready." in fh.read()

    _wait(up, timeout, f"{name} up again", dep)
    return new


def restart(args: argparse.Namespace) -> None:
    dep = Deployment.load(Path(args.home).resolve())
    if dep is None or not dep.procs:
        raise DeployError(f"no running deployment in {Path(args.home).resolve()}")
    new = restart_component(dep, args.component, kill=args.kill, grace=args.grace)
    _say(args, f"{args.component} restarted (pid {new.pid})")


def status(args: argparse.Namespace) -> int:
    dep = Deployment.load(Path(args.home).resolve())
    if dep is None or not dep.procs:
        print(f"not running ({Path(args.home).resolve()})")
        return 1
    broker = f"redis-db={dep.redis_db}" if dep.redis_db is not None else "no broker"
    print(f"{dep.url}  {dep.executor} executor  db={dep.db}  {broker}  home={dep.home}")
    up = True
    for p in dep.procs:
        alive = _group_alive(p)
        up &= alive
        print(f"  {p.name:14} pid {p.pid:<8} {'running' if alive else 'DEAD':8} {p.log}")
    try:
        print(json.dumps(requests.get(f"{dep.url}/api/v2/monitor/health", timeout=3).json()))
    except (requests.RequestException, ValueError) as exc:
        print(f"  health: unreachable ({exc})")
        up = False
    return 0 if up else 1


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(f"deploy-local: {text}", flush=True)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", default=os.environ.get("DIALSFLOW_DEPLOY_HOME", DEFAULT_HOME),
                      help="AIRFLOW_HOME of the deployment: state, secrets, logs (default "
                           ".airflow-local/ or $DIALSFLOW_DEPLOY_HOME)")
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
    s.add_argument("--jobs-file", help="DIALSFLOW_JOBS_FILE (default: dialsflow's)")
    s.add_argument("--output", help="DIALSFLOW_OUTPUT_ROOT (default HOME/output)")
    s.add_argument("--pool-slots", type=int, default=4, help=f"slots of the {POOL} pool")
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
    v = sub.add_parser("supervise", help="(internal) run a component under the restart policy")
    v.add_argument("name")
    v.add_argument("cmd", nargs=argparse.REMAINDER)
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
        elif args.command == "supervise":
            return supervise(args.name, args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd)
        else:
            return status(args)
    except DeployError as exc:
        print(f"deploy-local: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
