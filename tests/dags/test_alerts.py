"""A failed night alerts once through each configured channel, and only on this machine.

`airflow dags test` runs the DAG's `on_failure_callback` in its own process
(DagRun.update_state(execute_callbacks=True) → execute_dag_callbacks), with the context the
DAG processor gives it under a scheduler (the last failed task instance): the callback, the
providers' notifiers and the connections are the production ones. The webhook is a local
HTTP receiver (Apprise's Mattermost plugin posts to it), the mail server a local aiosmtpd.
"""

from __future__ import annotations

import email
import json
import socket
import threading
from collections.abc import Iterator
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from dialsflow_emulator.process import EmulatorProcess
from localdev.airflow_home import LocalAirflow
from tests.expected import morning_after_release

NOW = morning_after_release(0)
JOB = "demo_tracker"
FAILING_ME = "PXLayer_2$"
TOKEN = "s3cr3t-hook-token"  # the webhook URL's secret: never in a message or a log
BASE_URL = "https://airflow.example.org"
RECIPIENT = "dqm-ops@example.org"


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # http.server calls it by this name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, json.loads(body)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def webhook() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.posts = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd API
        self.messages.append((list(envelope.rcpt_tos),
                              email.message_from_bytes(envelope.content, policy=email_policy)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[_Mailbox, int]]:
    box, port = _Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with EmulatorProcess("--now", NOW) as e:
        yield e


def _alert_env(webhook_port: int, smtp_port: int) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_DIALSFLOW_ALERT_WEBHOOK": json.dumps(
            {"conn_type": "apprise",
             "extra": {"config": {"path": f"mmost://127.0.0.1:{webhook_port}/{TOKEN}"}}}),
        "AIRFLOW_CONN_DIALSFLOW_ALERT_SMTP": json.dumps(
            {"conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
             "extra": {"from_email": "dialsflow@example.org", "to": RECIPIENT,
                       "disable_ssl": True, "disable_tls": True, "retry_limit": 1}}),
        "AIRFLOW__API__BASE_URL": BASE_URL,
        "DIALSFLOW_RETRIES": "0",
    }


def test_failed_night_alerts_once_by_webhook_and_mail(tmp_path: Path, emu, webhook,
                                                      mailbox) -> None:
    box, smtp_port = mailbox
    emu.set_faults(failing_me=FAILING_ME)  # one unit of the job fails for good (HTTP 500)
    try:
        airflow = LocalAirflow(tmp_path / "home", emu, tmp_path / "out",
                               extra_env=_alert_env(webhook.server_address[1], smtp_port))
        out = airflow.setup().dags_test(NOW, {"jobs": [JOB]})
    finally:
        emu.set_faults(failing_me=None)
    log = out.stdout + out.stderr
    assert out.returncode == 1, log[-3000:]
    report = json.loads(next((tmp_path / "out" / JOB / "_reports").glob("*.json")).read_text())
    run_id = report["run_id"]
    assert report["failures"], report["verdict"]

    assert len(webhook.posts) == 1, webhook.posts  # type: ignore[attr-defined]
    path, payload = webhook.posts[0]  # type: ignore[attr-defined]
    assert path == f"/hooks/{TOKEN}"
    assert len(box.messages) == 1, box.messages
    rcpt, mail = box.messages[0]
    assert rcpt == [RECIPIENT]
    assert "failed" in mail["Subject"] and NOW[:10] in mail["Subject"]
    mail_text = mail.get_body(("html",)).get_content()
    for text in (payload["text"], mail_text):
        assert f"run {run_id}" in text
        assert f"- {JOB}: FAILED" in text
        assert report["failures"][0] in text.replace("&#x27;", "'").replace("&quot;", '"')
        assert "PXLayer_2" in text
        assert f"{BASE_URL}/dags/dials_ingest/runs/" in text
    assert "Last failed task: completeness" in payload["text"]
    assert TOKEN not in log and TOKEN not in payload["text"] and TOKEN not in mail_text


def test_no_alert_connection_sends_nothing_and_fails_nothing(webhook, mailbox) -> None:
    """Without the connections the callback returns before composing anything: composing
    this context would raise (its `dag` is None)."""
    from dialsflow.airflow.alerts import night_failure_alert

    box, _ = mailbox
    sent = len(webhook.posts), len(box.messages)  # type: ignore[attr-defined]
    night_failure_alert()({"dag": None, "run_id": "manual__x"})
    assert (len(webhook.posts), len(box.messages)) == sent  # type: ignore[attr-defined]
