"""Operators and viewers log in with their CERN account: Airflow's Keycloak auth manager (as
docker-compose.yaml runs it) against the emulator's CERN SSO twin, through the real
authorization-code flow, with the project's DAGs and the "DIALS ingestion" page.

Every request a browser would make is made with `requests`: the login redirect, the CERN
login form, the callback; then the page's data, a task log, trigger, clear and backfill,
each decided by the twin's mirror of the client's authorization settings
(dialsflow_emulator/keycloak_authz.py).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

import orjson
import pytest
import requests

from dialsflow_emulator import cli, keycloak_authz
from dialsflow_emulator.process import EmulatorProcess, free_port
from dialsflow_emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERS
from localdev.airflow_home import LocalAirflow
from localdev.demo import NIGHT

from ..airflow_server import api_server

KEYCLOAK_AUTH_MANAGER = (
    "airflow.providers.keycloak.auth_manager.keycloak_auth_manager.KeycloakAuthManager")
DAG = "dials_ingest"
STATUS = "/dials-ingestion/api/status"
AUTHORIZE = "/auth/realms/cern/protocol/openid-connect/auth"
TOKEN = "/auth/realms/cern/protocol/openid-connect/token"
#: A job the jobs file lacks: the night fails at once in load_config, leaving its log.
BAD_JOB = "no_such_job_for_the_login_test"


@dataclass
class Site:
    url: str
    emulator: EmulatorProcess
    run_id: str  # the failed night whose load_config log viewers read

    def api(self, path: str) -> str:
        return f"{self.url}/api/v2{path}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The emulator (one login client, its callback on the api-server) and an api-server
    with the Keycloak auth manager; one failed night run by the executor."""
    base = tmp_path_factory.mktemp("keycloak")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # the client's redirect URIs: the login callback, and (Keycloak checks post-logout
    # redirects against the same list) the logout callback
    with EmulatorProcess("--now", NIGHT,
                         "--login-client", f"{DEFAULT_CLIENT_ID}={url}/auth/login_callback",
                         "--login-client", f"{DEFAULT_CLIENT_ID}={url}/auth/logout_callback",
                         log_path=base / "emulator.log") as emu:
        airflow = LocalAirflow(base / "home", emu, base / "out", extra_env={
            "DIALSFLOW_RETRIES": "0",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"{url}/",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__AUTH_MANAGER": KEYCLOAK_AUTH_MANAGER,
            "AIRFLOW__KEYCLOAK_AUTH_MANAGER__SERVER_URL": f"{emu.url}/auth/",
            "AIRFLOW__KEYCLOAK_AUTH_MANAGER__REALM": "cern",
            "AIRFLOW__KEYCLOAK_AUTH_MANAGER__CLIENT_ID": DEFAULT_CLIENT_ID,
            "AIRFLOW__KEYCLOAK_AUTH_MANAGER__CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        }).setup()
        with api_server(airflow, port):
            night = airflow.airflow("dags", "test", DAG, NIGHT, "-c",
                                    orjson.dumps({"jobs": [BAD_JOB]}).decode(),
                                    "--use-executor")
            assert night.returncode == 1, night.stdout[-3000:] + night.stderr[-3000:]
            run_id = re.search(r"run_id='?([^',\s]+)", night.stdout + night.stderr)
            assert run_id, night.stdout[-3000:]
            yield Site(url, emu, run_id[1])


def login(site: Site, user: str, password: str | None = None) -> requests.Session:
    """The browser's way in: /auth/login → CERN login form → callback → the UI."""
    browser = requests.Session()
    form = browser.get(f"{site.url}/auth/login", timeout=30)
    assert form.status_code == 200 and 'id="kc-form-login"' in form.text, form.text[:500]
    assert form.url.startswith(site.emulator.url + AUTHORIZE + "?"), form.url
    landed = browser.post(form_action(form), timeout=30, data={
        "username": user, "password": password or DEFAULT_USERS[user].password})
    assert landed.status_code == 200 and landed.url == f"{site.url}/", landed.url
    assert {"_token", "_access_token", "_refresh_token", "_id_token"} <= set(browser.cookies.keys())
    return browser


def form_action(page: requests.Response) -> str:
    """Where the CERN login form posts the credentials."""
    found = re.search(r'<form id="kc-form-login" action="([^"]+)"', page.text)
    assert found, page.text[:500]
    return html.unescape(found[1])


def trigger(browser: requests.Session, site: Site) -> requests.Response:
    return browser.post(site.api(f"/dags/{DAG}/dagRuns"), timeout=30,
                        json={"logical_date": None, "conf": {"jobs": [BAD_JOB]}})


def clear(browser: requests.Session, site: Site, run_id: str) -> requests.Response:
    return browser.post(site.api(f"/dags/{DAG}/clearTaskInstances"), timeout=30, json={
        "dry_run": False, "dag_run_id": run_id, "task_ids": ["load_config"],
        "only_failed": False})


def backfill(browser: requests.Session, site: Site) -> requests.Response:
    return browser.post(site.api("/backfills"), timeout=30, json={
        "dag_id": DAG, "from_date": "2024-02-01T00:00:00Z", "to_date": "2024-02-02T00:00:00Z",
        "max_active_runs": 1, "reprocess_behavior": "none", "dag_run_conf": {}})


def test_the_mirror_has_every_resource_the_auth_manager_asks_about() -> None:
    """An unknown resource is Keycloak's 400 (an Airflow error page), not a denial."""
    from airflow.api_fastapi.common.types import MenuItem
    from airflow.providers.keycloak.auth_manager.resources import KeycloakResource

    wanted = {r.value for r in KeycloakResource} | {m.value for m in MenuItem}
    assert set(keycloak_authz.RESOURCES) == wanted


@pytest.mark.parametrize("flags,error", [
    (["--login-client", "nobody=http://x/cb"], "register the client first"),
    (["--login-client", "dialsflow-emulator"], "--login-client takes ID=URI"),
    (["--user", "only-a-name"], "--user takes NAME:PASSWORD:ROLES"),
])
def test_the_emulator_refuses_a_login_setting_it_cannot_use(
        flags: list[str], error: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--port", str(free_port()), *flags]) == 2
    assert error in capsys.readouterr().err


def test_anonymous_gets_no_data_and_the_page_sends_to_login(site: Site) -> None:
    got = requests.get(site.url + STATUS, timeout=30)
    assert got.status_code == 401 and "demo_tracker" not in got.text
    page = requests.get(site.url + "/dials-ingestion/", allow_redirects=False, timeout=30)
    assert page.status_code == 303 and page.headers["location"].endswith("/auth/login")
    login_redirect = requests.get(site.url + "/auth/login", allow_redirects=False, timeout=30)
    assert login_redirect.status_code == 307
    assert login_redirect.headers["location"].startswith(site.emulator.url)


def test_a_wrong_password_gets_the_form_again_and_no_session(site: Site) -> None:
    with requests.Session() as browser:
        form = browser.get(f"{site.url}/auth/login", timeout=30)
        again = browser.post(form_action(form), timeout=30,
                             data={"username": "viewer", "password": "not-it"})
        assert again.status_code == 200 and "Invalid username or password." in again.text
        assert again.url.startswith(site.emulator.url) and "_token" not in browser.cookies


def test_a_viewer_reads_the_page_and_logs_but_cannot_trigger_clear_or_backfill(
        site: Site) -> None:
    with login(site, "viewer") as viewer:
        data = viewer.get(site.url + STATUS, timeout=30)
        assert data.status_code == 200, data.text
        assert "demo_tracker" in {job["job"] for job in data.json()["jobs"]}
        log = viewer.get(site.api(f"/dags/{DAG}/dagRuns/{quote(site.run_id, safe='')}"
                                  "/taskInstances/load_config/logs/1"),
                         params={"full_content": "true"}, timeout=30)
        assert log.status_code == 200 and BAD_JOB in log.text, log.text[-2000:]
        assert trigger(viewer, site).status_code == 403
        assert clear(viewer, site, site.run_id).status_code == 403
        assert backfill(viewer, site).status_code == 403
        runs = viewer.get(site.api(f"/dags/{DAG}/dagRuns"), timeout=30)
        assert runs.status_code == 200 and runs.json()["total_entries"] == 1


def test_an_operator_triggers_clears_and_backfills(site: Site) -> None:
    with login(site, "operator") as operator:
        triggered = trigger(operator, site)
        assert triggered.status_code == 200, triggered.text
        cleared = clear(operator, site, site.run_id)
        assert cleared.status_code == 200, cleared.text
        assert [ti["task_id"] for ti in cleared.json()["task_instances"]] == ["load_config"]
        filled = backfill(operator, site)
        assert filled.status_code == 200, filled.text
        assert filled.json()["dag_id"] == DAG
        # what neither role may do: pause the DAG, write a connection
        paused = operator.patch(site.api(f"/dags/{DAG}"), json={"is_paused": True}, timeout=30)
        assert paused.status_code == 403, paused.text
        conn = operator.post(site.api("/connections"), timeout=30,
                             json={"connection_id": "x", "conn_type": "http"})
        assert conn.status_code == 403, conn.text


def test_logging_out_ends_the_cern_session(site: Site) -> None:
    with login(site, "viewer") as viewer:
        kept = {name: viewer.cookies[name] for name in ("_token", "_access_token")}
        userinfo = site.emulator.url + "/auth/realms/cern/protocol/openid-connect/userinfo"
        bearer = {"Authorization": f"Bearer {kept['_access_token']}"}
        assert requests.get(userinfo, headers=bearer, timeout=30).json()["cern_roles"] == [
            "airflow-viewer"]
        out = viewer.get(f"{site.url}/auth/logout", timeout=30)
        assert out.status_code == 200 and 'id="kc-form-login"' in out.text  # the login form
        assert "_token" not in viewer.cookies
        assert requests.get(userinfo, headers=bearer, timeout=30).status_code == 401
        # the cookies of before: Airflow's own JWT still verifies, CERN SSO says no
        replayed = requests.get(site.url + STATUS, cookies=kept, timeout=30)
        assert replayed.status_code == 403, replayed.text


def test_the_login_page_refuses_a_foreign_redirect_uri(site: Site) -> None:
    got = requests.get(site.emulator.url + AUTHORIZE,
                       params={"client_id": DEFAULT_CLIENT_ID, "response_type": "code",
                               "redirect_uri": "https://evil.example/cb", "state": "s"},
                       allow_redirects=False, timeout=30)
    assert got.status_code == 400 and "Invalid parameter: redirect_uri" in got.text


def authorization_code(site: Site, user: str) -> str:
    """The code CERN SSO hands the login callback, the callback itself not followed."""
    with requests.Session() as browser:
        form = browser.get(site.emulator.url + AUTHORIZE, timeout=30, params={
            "client_id": DEFAULT_CLIENT_ID, "response_type": "code", "state": "s",
            "redirect_uri": f"{site.url}/auth/login_callback", "scope": "openid"})
        back = browser.post(form_action(form), allow_redirects=False, timeout=30,
                            data={"username": user, "password": DEFAULT_USERS[user].password})
    assert back.status_code == 302, back.text[:500]
    assert back.headers["location"].startswith(f"{site.url}/auth/login_callback?")
    return parse_qs(urlsplit(back.headers["location"]).query)["code"][0]


def test_a_code_works_once_for_its_client_only(site: Site) -> None:
    callback = f"{site.url}/auth/login_callback"
    exchange = {"grant_type": "authorization_code", "code": authorization_code(site, "viewer"),
                "redirect_uri": callback, "client_id": DEFAULT_CLIENT_ID}
    wrong_secret = requests.post(site.emulator.url + TOKEN, timeout=30,
                                 data={**exchange, "client_secret": "x"})
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    other_uri = requests.post(site.emulator.url + TOKEN, timeout=30, data={
        **exchange, "client_secret": DEFAULT_CLIENT_SECRET, "redirect_uri": callback + "x"})
    assert other_uri.status_code == 400  # and the code is spent, as in Keycloak
    assert other_uri.json()["error_description"] == "Incorrect redirect_uri"
    again = requests.post(site.emulator.url + TOKEN, timeout=30,
                          data={**exchange, "client_secret": DEFAULT_CLIENT_SECRET})
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant", "error_description": "Code not valid"}


def test_the_decision_answers_as_keycloak_does(site: Site) -> None:
    """The three answer forms of the uma-ticket grant, and the pushed `dag_entity`."""
    tokens = requests.post(site.emulator.url + TOKEN, timeout=30, data={
        "grant_type": "authorization_code", "code": authorization_code(site, "operator"),
        "redirect_uri": f"{site.url}/auth/login_callback", "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET}).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

    def ask(*permissions: str, mode: str | None = None, entity: str | None = None
            ) -> requests.Response:
        data: dict = {"grant_type": keycloak_authz.UMA_GRANT, "audience": DEFAULT_CLIENT_ID,
                      "permission": list(permissions)}
        if mode:
            data["response_mode"] = mode
        if entity:
            data["claim_token"] = base64.b64encode(orjson.dumps({"dag_entity": [entity]}))
            data["claim_token_format"] = keycloak_authz.JWT_CLAIMS
        return requests.post(site.emulator.url + TOKEN, data=data, headers=bearer, timeout=30)

    assert ask("Dag#POST", mode="decision", entity="RUN").json() == {"result": True}
    denied = ask("Dag#PUT", mode="decision")  # pausing a DAG: no dag_entity pushed
    assert denied.status_code == 403
    assert denied.json() == {"error": "access_denied", "error_description": "not_authorized"}
    assert ask("Dag#DELETE", mode="decision", entity="TASK_INSTANCE").status_code == 200
    assert ask("Dag#DELETE", mode="decision", entity="XCOM").status_code == 403
    listed = ask("Dags#MENU", "Config#MENU", "Connection#POST", mode="permissions")
    assert listed.json() == [{"rsid": "Dags", "rsname": "Dags", "scopes": ["MENU"]},
                             {"rsid": "Config", "rsname": "Config", "scopes": ["MENU"]}]
    rpt = ask("View#GET")
    assert rpt.status_code == 200 and rpt.json()["token_type"] == "Bearer"
    unknown = ask("Dagz#GET")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_resource"
