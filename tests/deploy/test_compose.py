"""Static checks of docker-compose.yaml and the Dockerfile (no Docker engine needed): the
production topology is the one the code and the DAG expect, and no secret is in git."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.native.env import read_env_file
from deploy.native.lifecycle import POOL

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())  # `<<` merges resolved
SERVICES: dict = COMPOSE["services"]
AIRFLOW = sorted(name for name, svc in SERVICES.items()
                 if svc.get("build") or "dialsflow-airflow" in str(svc.get("image", "")))
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INTERPOLATION = re.compile(r"\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}")
VOLUME = re.compile(r"(\$\{[^}]*\}|[^:]+):([^:]+)(:ro|:rw)?")
#: keys whose value would be a secret (paths to secret files are fine)
SENSITIVE = re.compile(r"^(?!.*_(FILE|DIR|PATH)$).*(SECRET|PASSWORD|FERNET|TOKEN|_KEY$)", re.I)


def _dag_pool() -> str:
    """POOL as dags/dials_ingest.py defines it (parsed, not imported: no Airflow needed)."""
    tree = ast.parse((ROOT / "dags" / "dials_ingest.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "POOL" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("dags/dials_ingest.py defines no POOL constant")


def _requirement(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.fullmatch(rf"{re.escape(name)}==(\S+)\s*(#.*)?", line.strip())
        if m:
            return m.group(1)
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def test_all_services_of_the_official_topology_with_their_commands() -> None:
    commands = {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                "airflow-worker": "celery worker"}
    assert {"postgres", "redis", "airflow-init", *commands} <= set(SERVICES)
    for name, command in commands.items():
        assert SERVICES[name]["command"] == command, name
        assert SERVICES[name].get("healthcheck"), f"{name} has no healthcheck"
    assert set(commands) | {"airflow-init"} <= set(AIRFLOW)
    init = SERVICES["airflow-init"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert "/entrypoint airflow version" in "\n".join(init["command"])
    for name in set(commands) - {"airflow-worker"}:
        assert SERVICES[name]["depends_on"]["airflow-init"]["condition"] == \
            "service_completed_successfully", name


def test_postgres_and_redis_images_are_pinned_exactly() -> None:
    assert re.fullmatch(r"postgres:16\.\d+(-bookworm)?(@sha256:[0-9a-f]{64})?|"
                        r"postgres@sha256:[0-9a-f]{64}", SERVICES["postgres"]["image"])
    assert re.fullmatch(r"redis:7\.2\.\d+(-bookworm)?(@sha256:[0-9a-f]{64})?|"
                        r"redis@sha256:[0-9a-f]{64}", SERVICES["redis"]["image"])


def test_every_airflow_service_shares_the_celery_postgres_redis_env() -> None:
    envs = {name: _env(name) for name in AIRFLOW}
    keys = ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND",
            "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
            "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "AIRFLOW__CORE__LOAD_EXAMPLES", "DIALSFLOW_JOBS_FILE", "DIALSFLOW_OUTPUT_ROOT")
    reference = envs["airflow-scheduler"]
    for name, env in envs.items():
        for key in keys:
            assert env.get(key) == reference.get(key), f"{name}: {key} differs from the scheduler"
    assert reference["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert reference["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    assert re.fullmatch(r"postgresql\+psycopg2://airflow:\$\{POSTGRES_PASSWORD[^}]*\}@postgres"
                        r"(:5432)?/airflow", reference["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert reference["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert re.fullmatch(r"redis://:?@?redis:6379/\d+", reference["AIRFLOW__CELERY__BROKER_URL"])
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
                "AIRFLOW__CORE__FERNET_KEY"):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", reference[key]), \
            f"{key} must be a required variable from deploy/compose.env"
    # the execution API URL names the API server service and the port it listens on
    url = re.fullmatch(r"http://([a-z-]+):(\d+)/execution/",
                       reference["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert url and SERVICES[url.group(1)]["command"] == "api-server"
    assert any(str(p).endswith(f":{url.group(2)}") for p in SERVICES[url.group(1)]["ports"])


def test_volumes_mount_repo_folders_where_the_code_expects_them() -> None:
    expected = {"/opt/airflow/dags": "dags", "/opt/airflow/plugins": "plugins",
                "/opt/airflow/include": "include"}
    for name in AIRFLOW:
        mounts = {}
        for volume in SERVICES[name]["volumes"]:
            m = VOLUME.fullmatch(volume)
            assert m, f"{name}: unreadable volume {volume!r}"
            mounts[m.group(2)] = m.group(1)
        for target, folder in expected.items():
            assert mounts.get(target) == f"./{folder}", f"{name}: {target} <- {mounts.get(target)}"
            assert (ROOT / folder).is_dir()
        assert (ROOT / "plugins" / "dialsflow" / "__init__.py").exists()
        assert (ROOT / "dags" / "dials_ingest.py").exists()
        assert mounts.get(_env(name)["DIALSFLOW_OUTPUT_ROOT"]), f"{name}: output not mounted"
        assert "/opt/airflow/logs" in mounts and "/opt/airflow/secrets" in mounts
        # Airflow's own folders: nothing may point them elsewhere than the mounts
        assert "AIRFLOW__CORE__DAGS_FOLDER" not in _env(name)
        assert "AIRFLOW__CORE__PLUGINS_FOLDER" not in _env(name)


def test_jobs_file_points_to_a_valid_jobs_file_in_the_repo(monkeypatch, tmp_path) -> None:
    from dialsflow.config.jobs import load_jobs

    path = _env("airflow-worker")["DIALSFLOW_JOBS_FILE"]
    assert path.startswith("/opt/airflow/include/")
    local_path = ROOT / "include" / path.removeprefix("/opt/airflow/include/")
    assert local_path.is_file(), local_path
    monkeypatch.setenv("DIALSFLOW_OUTPUT_ROOT", str(tmp_path))  # the compose file sets it too
    assert load_jobs(local_path), "no jobs"  # validates every job and its pattern files


def test_dockerfile_pins_airflow_and_bakes_in_the_locked_requirements() -> None:
    airflow = _requirement("apache-airflow")
    base = re.search(r"^FROM\s+(\S+)", DOCKERFILE, re.M)
    assert base, "no FROM line"
    assert re.fullmatch(rf"apache/airflow:(slim-)?{re.escape(airflow)}-python3\.11"
                        r"(@sha256:[0-9a-f]{64})?", base.group(1)), base.group(1)
    install = re.sub(r"\\\n", " ", DOCKERFILE)  # continuation lines joined
    install = " ".join(line for line in install.splitlines() if line.startswith("RUN "))
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install
    assert re.search(r"-r \S*requirements\.txt", install)
    assert re.search(r"-c \S*constraints\.txt", install)
    assert re.search(r"^COPY .*requirements\.txt.*constraints\.txt", DOCKERFILE, re.M)
    # the drivers the metadata DB URL needs are in the lock the image installs
    _requirement("psycopg2-binary")
    _requirement("asyncpg")
    assert SERVICES["airflow-scheduler"].get("build") in (".", {"context": "."})


def test_init_creates_the_pool_the_dag_uses() -> None:
    pool = _dag_pool()
    script = "\n".join(SERVICES["airflow-init"]["command"])
    assert re.search(rf"airflow pools set {re.escape(pool)} ", script), script
    assert POOL == pool  # the native topology creates the same pool


def test_no_secrets_in_the_compose_file_or_in_git() -> None:
    for name, svc in SERVICES.items():
        for key, value in (svc.get("environment") or {}).items():
            value = str(value)
            assert not key.startswith("AIRFLOW_CONN_"), f"{name}: {key} belongs in the env file"
            if SENSITIVE.search(key) and value:
                assert INTERPOLATION.fullmatch(value), f"{name}: {key} has a literal value"
            for userinfo in re.findall(r"://[^/@\s]*:([^@\s]*)@", value):
                assert userinfo == "" or INTERPOLATION.fullmatch(userinfo), \
                    f"{name}: {key} has a literal password"
    text = (ROOT / "docker-compose.yaml").read_text()
    assert '"password"' not in text
    tracked = subprocess.run(["git", "ls-files", "deploy"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert "deploy/connections.env" not in tracked and "deploy/compose.env" not in tracked
    ignored = subprocess.run(["git", "check-ignore", "deploy/connections.env",
                              "deploy/compose.env", "deploy/secrets/x509up"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    assert len(ignored) == 3, f"not git-ignored: {ignored}"


def test_example_env_files_hold_placeholders_only() -> None:
    conns = read_env_file(ROOT / "deploy" / "connections.env.example")
    assert set(conns) == {"AIRFLOW_CONN_DIALS_DEFAULT", "AIRFLOW_CONN_OMS_DEFAULT",
                          "AIRFLOW_CONN_DBS_DEFAULT", "AIRFLOW_CONN_CAF_DEFAULT"}
    import json

    for key, value in conns.items():
        conn = json.loads(value)
        assert conn["conn_type"] == "http" and conn["host"].startswith("https://"), key
        assert re.fullmatch(r"<[^>]+>", conn.get("password", "<none>")), f"{key}: real secret?"
    compose_env = read_env_file(ROOT / "deploy" / "compose.env.example")
    for key, value in compose_env.items():
        if SENSITIVE.search(key):
            assert value == "change-me", key
    # every variable the compose file requires is documented in the example
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", (ROOT / "docker-compose.yaml").read_text()))
    assert required <= set(compose_env), required - set(compose_env)


def test_operators_and_viewers_log_in_with_cern_accounts() -> None:
    """The Keycloak auth manager against CERN SSO (realm cern) in every component; the
    client secret a required variable the API server alone receives."""
    keycloak = ("airflow.providers.keycloak.auth_manager.keycloak_auth_manager."
                "KeycloakAuthManager")
    assert _requirement("apache-airflow-providers-keycloak")
    module, _, cls = keycloak.rpartition(".")
    spec = importlib.util.find_spec("airflow")  # the package's folder, nothing imported
    assert spec and spec.submodule_search_locations
    source = Path(spec.submodule_search_locations[0], *module.split(".")[1:]).with_suffix(".py")
    assert f"class {cls}(" in source.read_text()
    for name in AIRFLOW:
        env = _env(name)
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == keycloak, name
        assert not any(k.startswith("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER") for k in env), name
        assert env["AIRFLOW__KEYCLOAK_AUTH_MANAGER__REALM"] == "cern", name
        assert re.fullmatch(r"\$\{DIALSFLOW_SSO_URL:-https://auth\.cern\.ch/auth/\}",
                            env["AIRFLOW__KEYCLOAK_AUTH_MANAGER__SERVER_URL"]), name
        assert re.fullmatch(r"\$\{DIALSFLOW_SSO_CLIENT_ID:\?[^}]+\}",
                            env["AIRFLOW__KEYCLOAK_AUTH_MANAGER__CLIENT_ID"]), name
        secret = env.get("AIRFLOW__KEYCLOAK_AUTH_MANAGER__CLIENT_SECRET")
        if SERVICES[name].get("command") == "api-server":
            assert secret and re.fullmatch(r"\$\{DIALSFLOW_SSO_CLIENT_SECRET:\?[^}]+\}", secret)
        else:
            assert secret is None, f"{name} runs task or CLI code: no SSO client secret there"
    # the login callback CERN SSO redirects to is derived from the public base URL
    assert _env("airflow-apiserver")["AIRFLOW__API__BASE_URL"].startswith("${AIRFLOW_BASE_URL")
