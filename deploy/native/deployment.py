"""What a deployment is, as recorded in its home: ports, database, processes, commands."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOME = ROOT / ".airflow" / "deploy"  # git-ignored (/.airflow/)
STATE = "deployment.json"
ENV_FILE = "component-env.json"  # the components' environment (secrets inside), for restart
#: this host's PostgreSQL and Redis, which every deployment shares (each owns a database)
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS = ("127.0.0.1", 6379)


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
