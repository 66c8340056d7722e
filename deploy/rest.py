"""A small Airflow REST API v2 client for deployment tests and scripts.

Only what checking a deployment needs: a token from POST /auth/token, DAG (un)pausing,
triggering, waiting for a run, task instances and their logs (JSON only: the logs endpoint
refuses text/plain), backfills.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import requests

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowError(Exception):
    """The API answered with an error, or a wait timed out; the message carries the body."""


class AirflowClient:
    def __init__(self, url: str, username: str, password: str, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.session = requests.Session()
        self._token: str | None = None

    # ---- plumbing ---------------------------------------------------------------------------

    def token(self) -> str:
        r = self.session.post(f"{self.url}/auth/token", timeout=self.timeout,
                              json={"username": self.username, "password": self.password})
        if r.status_code not in (200, 201):
            raise AirflowError(f"POST /auth/token: {r.status_code} {r.text[:300]}")
        self._token = r.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, ok: tuple[int, ...] = (200, 201),
                **kwargs: Any) -> Any:
        """JSON of `method path` under /api/v2; a 401 renews the token once."""
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        for attempt in (1, 2):
            headers["Authorization"] = f"Bearer {self._token or self.token()}"
            r = self.session.request(method, f"{self.url}/api/v2/{path.lstrip('/')}",
                                     headers=headers, timeout=self.timeout, **kwargs)
            if r.status_code == 401 and attempt == 1:
                self._token = None
                continue
            if r.status_code not in ok:
                raise AirflowError(f"{method} /api/v2/{path}: {r.status_code} {r.text[:500]}")
            return r.json() if r.content else None
        raise AssertionError("unreachable")

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    # ---- DAGs and runs ----------------------------------------------------------------------

    def wait_dag(self, dag_id: str, timeout: float = 60) -> dict:
        """The DAG once the dag-processor has serialized it (import errors are reported)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.get(f"dags/{dag_id}")
            except AirflowError as exc:
                if " 404 " not in str(exc):
                    raise
            time.sleep(1)
        errors = self.get("importErrors").get("import_errors", [])
        raise AirflowError(f"DAG {dag_id} not parsed within {timeout:.0f} s; import errors: "
                           f"{[e.get('stack_trace', '')[-500:] for e in errors]}")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, logical_date: str | None = None,
                conf: dict | None = None) -> dict:
        """A manual run; `logical_date` None gives a run without data interval."""
        return self.request("POST", f"dags/{dag_id}/dagRuns",
                            json={"logical_date": logical_date, "conf": conf or {}})

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        run: dict = {}
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            time.sleep(1)
        states = {(t["task_id"], t.get("map_index")): t["state"]
                  for t in self.task_instances(dag_id, run_id)}
        raise AirflowError(f"run {run_id} still {run.get('state')} after {timeout:.0f} s; "
                           f"task states: {states}")

    def runs(self, dag_id: str, **params: Any) -> list[dict]:
        return self.get(f"dags/{dag_id}/dagRuns", params={"limit": 100, **params})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str, **params: Any) -> list[dict]:
        return self.get(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances",
                        params={"limit": 1000, **params})["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1,
                 map_index: int = -1) -> list[dict]:
        """The structured log events of one try (`event`, `level`, `timestamp`, ...)."""
        body = self.get(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
                        f"{task_id}/logs/{try_number}",
                        params={"map_index": map_index, "full_content": "true"})
        content = body.get("content", [])
        return [c if isinstance(c, dict) else {"event": str(c)} for c in content]

    @staticmethod
    def log_text(events: list[dict]) -> str:
        """Log events as text lines, every field kept (errors live outside `event` too)."""
        return "\n".join(" ".join(f"{k}={v}" for k, v in e.items()) for e in events)

    # ---- backfills --------------------------------------------------------------------------

    def backfill(self, dag_id: str, from_date: str, to_date: str, **options: Any) -> dict:
        return self.request("POST", "backfills", json={"dag_id": dag_id, "from_date": from_date,
                                                       "to_date": to_date, **options})
