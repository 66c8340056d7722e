"""Tell operators when a night fails, through Airflow's notifiers, configured by connections.

The DAG's `on_failure_callback` (run by the DAG processor; by `airflow dags test` in the
same process) gets one `NightFailureAlert`. The completeness task fails the DAG run both on
our failures and on a verdict worse than a job's tolerance, so this one callback covers a
failed task of any kind and a bad verdict. The message names the night (run id, logical
date), the failed task, each job's verdict with its first causes (read from the job's
completeness report, `<output>/_reports/<run id>.json`) and a link to the run in the UI.

Channels, each sent only when its connection exists (no connection: nothing is sent,
nothing fails):
- `dialsflow_alert_webhook`: an Apprise connection (apache-airflow-providers-apprise),
  extra `{"config": {"path": "mmosts://mattermost.example/hooks-token"}}` — a Mattermost
  (Slack-compatible) incoming webhook, or any Apprise URL;
- `dialsflow_alert_smtp`: an SMTP connection (apache-airflow-providers-smtp), extra
  `from_email` and `to` (comma-separated recipients).
A channel that fails is logged (without its credentials) and the other one is still tried.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseHook, BaseNotifier, Connection

log = logging.getLogger("dialsflow")

WEBHOOK_CONN_ID = "dialsflow_alert_webhook"
SMTP_CONN_ID = "dialsflow_alert_smtp"
DEFAULT_BASE_URL = "http://localhost:8080"
FIRST_CAUSES = 3


@dataclass(frozen=True)
class Alert:
    """What a channel sends: a one-line title and a plain-text body."""

    title: str
    body: str


#: Builds a channel's notifier for one alert.
Sender = Callable[[Alert], BaseNotifier]


def night_failure_alert() -> NightFailureAlert:
    """The DAG's `on_failure_callback`."""
    return NightFailureAlert()


class NightFailureAlert(BaseNotifier):
    """Composes the alert of a failed DAG run and hands it to every configured channel."""

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render (the message is built, not templated). Rendering would also
        fail under `airflow dags test`, whose callback context holds a SerializedDAG
        without `get_template_env` (Airflow 3.3.2)."""

    def notify(self, context: Any) -> None:
        channels: dict[str, Sender] = {}
        for conn_id, make in ((WEBHOOK_CONN_ID, _webhook_notifier),
                              (SMTP_CONN_ID, _smtp_notifier)):
            conn = _connection(conn_id)
            if conn is not None and (sender := make(conn)) is not None:
                channels[conn_id] = sender
        if not channels:
            log.info("dialsflow: no alert connection (%s, %s): no alert sent",
                     WEBHOOK_CONN_ID, SMTP_CONN_ID)
            return
        alert = compose(context)
        for conn_id, sender in channels.items():
            try:
                sender(alert).notify(context)
            except Exception as exc:  # noqa: BLE001 - one channel down must not silence the other
                log.error("dialsflow: alert via %s failed: %s", conn_id, type(exc).__name__)
            else:
                log.info("dialsflow: alert handed to %s", conn_id)


def _connection(conn_id: str) -> Connection | None:
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _webhook_notifier(conn: Connection) -> Sender:
    """Apprise posts the alert to the connection's URL(s) (Mattermost: `{"text": ...}`)."""
    from airflow.providers.apprise.notifications.apprise import AppriseNotifier
    from airflow.sdk.log import mask_secret

    config = conn.extra_dejson.get("config")
    if isinstance(config, str):  # the hook accepts the JSON as a string too
        with contextlib.suppress(ValueError):
            config = json.loads(config)
    for item in config if isinstance(config, list) else [config]:
        if isinstance(item, dict) and item.get("path"):
            mask_secret(item["path"])  # the URL holds the webhook's token
    return lambda alert: AppriseNotifier(
        title=alert.title, body=alert.body, notify_type="failure",  # Apprise's NotifyType.FAILURE
        apprise_conn_id=conn.conn_id)


def _smtp_notifier(conn: Connection) -> Sender | None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    extra = conn.extra_dejson
    to = [a.strip() for a in str(extra.get("to", "")).split(",") if a.strip()]
    if not to or not extra.get("from_email"):
        log.error("dialsflow: connection %s needs extra 'to' and 'from_email': no e-mail sent",
                  SMTP_CONN_ID)
        return None
    # Every field given, so SmtpNotifier renders no template of its own (see
    # NightFailureAlert.render_template_fields).
    return lambda alert: SmtpNotifier(
        to=to, from_email=extra["from_email"], subject=alert.title, smtp_conn_id=conn.conn_id,
        html_content=f"<pre>{html.escape(alert.body)}</pre>")


# ---- the message -----------------------------------------------------------------------


def compose(context: Any) -> Alert:
    """The alert of a failed run from its callback context (`dag`, `run_id`, and when the
    run had a failed task: `dag_run`, `ti`)."""
    dag_id = context["dag"].dag_id
    run_id = context["run_id"]
    dag_run = context.get("dag_run")
    night = _night(dag_run)
    ti = context.get("ti")
    lines = [f"DAG {dag_id}, run {run_id} (night {night}) failed."]
    if ti is not None:
        label = f" [{ti.rendered_map_index}]" if getattr(ti, "rendered_map_index", None) else ""
        lines.append(f"Last failed task: {ti.task_id}{label}.")
    conf = getattr(dag_run, "conf", None) or {}
    lines += _job_lines(run_id, conf.get("jobs") or None)
    lines.append(f"Run: {run_url(dag_id, run_id)}")
    return Alert(f"dialsflow: night {night} failed ({dag_id})", "\n".join(lines))


def _night(dag_run: Any) -> str:
    when = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    return when.isoformat() if when is not None else "unknown"


def _job_lines(run_id: str, names: list[str] | None) -> list[str]:
    """Per job: its verdict and first causes from tonight's report, or why there is none."""
    from dialsflow.config.jobs import select_jobs
    from dialsflow.store.layout import report_file
    from dialsflow.store.reports import read_report

    try:
        jobs = select_jobs(names)
    except Exception as exc:  # noqa: BLE001 - a broken jobs file is the load_config task's cause
        return [f"Jobs: unreadable here ({exc}); see the load_config task's log."]
    lines = []
    for job in jobs:
        if not report_file(job.output, run_id).is_file():
            lines.append(f"- {job.name}: no completeness report (the night stopped before "
                         "it; see the failed task's log)")
            continue
        report = read_report(job.output, run_id)
        failures = report.get("failures") or []
        verdict = "FAILED" if failures else report.get("verdict", "?")
        lines.append(f"- {job.name}: {verdict}")
        lines += [f"    {cause}" for cause in failures[:FIRST_CAUSES]]
        if len(failures) > FIRST_CAUSES:
            lines.append(f"    (and {len(failures) - FIRST_CAUSES} more in "
                         f"{report_file(job.output, run_id)})")
    return lines


def run_url(dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI; the base is `[api] base_url`."""
    from airflow.sdk import conf

    base = (conf.get("api", "base_url", fallback=None) or DEFAULT_BASE_URL).rstrip("/")
    return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
