"""The environment of the components: env files as compose reads them, and the compose
file's common Airflow configuration for this host."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from .deployment import PG, REDIS, ROOT, DeployError, Deployment
from .resources import deployment_secrets

DEMO_JOBS_FILE = ROOT / "include" / "jsons" / "jobs.json"
FAST_ENV = {  # seconds instead of minutes: new DAG files and runs are picked up quickly
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
}


def read_env_file(path: Path) -> dict[str, str]:
    """An env file (deploy/connections.env, compose.env) as docker compose reads it."""
    return parse_env(path.read_text(), str(path))


def parse_env(text: str, source: str) -> dict[str, str]:
    """KEY=VALUE lines as docker compose's env_file reads them (quotes around a value are
    removed, # starts a comment line); errors name `source` and the line."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise DeployError(f"{source}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


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
    else:  # dialsflow has no default jobs file; compose names one, so does this topology
        env.setdefault("DIALSFLOW_JOBS_FILE", str(DEMO_JOBS_FILE))
    env.update(deployment_secrets(home))
    if args.fast:
        env.update(FAST_ENV)
    env.update(extra)
    return env
