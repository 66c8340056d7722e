"""What a deployment owns on this host: its ports, its PostgreSQL database, its Redis
database (claimed with a key), its secrets (files of mode 600 in its home)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from pathlib import Path

from .deployment import PG, REDIS, DeployError

REDIS_CLAIM = "dialsflow:deployment"  # key marking a Redis DB as owned by one deployment home


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port(port: int, what: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))  # noqa: S104 - only probing whether the port is taken
        except OSError:
            raise DeployError(f"port {port} ({what}) is in use: another deployment or "
                              "program has it; pick another with the matching flag") from None


def pg_connect(dbname: str = "postgres", port: int = PG["port"]):
    import psycopg2

    conn = psycopg2.connect(dbname=dbname, **{**PG, "port": port})
    conn.autocommit = True
    return conn


def fresh_database(db: str, keep: bool, port: int = PG["port"]) -> None:
    """Drop and recreate `db`, refusing when anything is connected to it (in use)."""
    with contextlib.closing(pg_connect(port=port)) as conn, conn.cursor() as cur:
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


def drop_database(db: str, port: int = PG["port"]) -> None:
    with contextlib.closing(pg_connect(port=port)) as conn, conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def redis_client(db: int):
    import redis

    return redis.Redis(host=REDIS[0], port=REDIS[1], db=db, socket_timeout=5)


def claim_redis_db(wanted: str, home: str) -> int:
    """Claim a Redis DB for this home: `auto` takes the first empty one of 1..15 (0 is left
    to ad-hoc use); a number must be empty or already ours."""
    candidates = range(1, 16) if wanted == "auto" else [int(wanted)]
    for n in candidates:
        r = redis_client(n)
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


def release_redis_db(n: int, home: str) -> None:
    r = redis_client(n)
    owner = r.get(REDIS_CLAIM)
    if owner is not None and owner.decode() == home:
        r.flushdb()  # Celery queues and results of this deployment only


def deployment_secrets(home: Path) -> dict[str, str]:
    """Per-deployment secrets, kept across restarts (the Fernet key must outlive them when
    --keep-db reuses the database); never printed."""
    path = home / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    from cryptography.fernet import Fernet

    values = {"AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
              "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
              "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode()}
    write_private(path, json.dumps(values))
    return values


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
