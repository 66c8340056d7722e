"""`dialsflow-emulator serve | truth | env`."""

from __future__ import annotations

import argparse
import shlex
import sys

import orjson

from .state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_USERS,
    DIALS_AUDIENCE,
    OMS_AUDIENCE,
    Settings,
    User,
)
from .world.basics import utc
from .world.build import build_world
from .world.entities import WORLD_KINDS
from .world.profiles import PROFILES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dialsflow-emulator",
                                description="Local twin of DIALS, Keycloak, OMS, DBS and CAF.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve every twin from one process")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    _world_args(serve)
    serve.add_argument("--latency-ms", type=float, default=0.0,
                       help="added to every data request (not Keycloak)")
    serve.add_argument("--fault-rate", type=float, default=0.0,
                       help="share of data requests that fail transiently (0..1)")
    serve.add_argument("--fault-kinds", default="502,503,504,reset,truncate",
                       help="comma list from 502,503,504,429,reset,truncate")
    serve.add_argument("--fault-max-consecutive", type=int, default=3,
                       help="at most this many faults in a row for the same URL")
    serve.add_argument("--retry-after", type=int, default=1, help="Retry-After of 429 answers (s)")
    serve.add_argument("--token-ttl", type=int, default=1200, help="access token lifetime (s)")
    serve.add_argument("--client", action="append", default=[], metavar="ID:SECRET",
                       help="register a confidential client (default: the emulator's own)")
    login = serve.add_argument_group(
        "browser login", "CERN SSO's authorization-code flow and the Airflow client's "
        "Authorization Services (docs/emulator.md)")
    login.add_argument("--login-client", action="append", default=[], metavar="ID=URI",
                       help="let a registered client log users in, redirecting to URI (a "
                            "trailing * matches any rest); repeat for more URIs")
    login.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD:ROLES",
                       help="a CERN account and its comma-separated application roles "
                            "(default: operator:operator-pw:airflow-operator and "
                            "viewer:viewer-pw:airflow-viewer)")
    login.add_argument("--code-ttl", type=int, default=60, metavar="S",
                       help="lifetime of an authorization code")
    dials = serve.add_argument_group(
        "DIALS server model", "production DIALS: 5 pods x 3 sync gunicorn workers, nginx and "
        "gunicorn timeouts of 30 s, nginx gzip (docs/emulator.md)")
    dials.add_argument("--server-workers", type=int, default=15, metavar="N",
                       help="requests DIALS renders at once; more wait in a queue")
    dials.add_argument("--gateway-timeout-s", type=float, default=30.0, metavar="S",
                       help="queueing plus rendering beyond this is nginx's 504")
    dials.add_argument("--server-ms-per-mb", type=float, default=0.0, metavar="MS",
                       help="rendering time per MB of JSON (production-like: 200)")
    dials.add_argument("--server-base-ms", type=float, default=0.0, metavar="MS",
                       help="rendering time of any request (production-like: 30)")
    dials.add_argument("--no-gzip", dest="gzip", action="store_false",
                       help="answer DIALS uncompressed (nginx gzips JSON in production)")

    truth = sub.add_parser("truth", help="print the synthetic world as JSON")
    _world_args(truth)

    env = sub.add_parser("env", help="print AIRFLOW_CONN_* lines pointing at a running emulator")
    env.add_argument("--host", default="127.0.0.1")
    env.add_argument("--port", type=int, default=8765)
    env.add_argument("--workspace", default="tracker")
    env.add_argument("--cert-class", default="Collisions24")
    env.add_argument("--cert-kind", default="golden", choices=sorted(WORLD_KINDS))
    env.add_argument("--oms-via", default="direct", choices=["direct", "dials"],
                     help="reach OMS directly (omsapi) or through DIALS' oms-proxy")
    env.add_argument("--format", default="shell", choices=["shell", "dotenv"],
                     help="shell: `export K='V'` lines to eval; dotenv: K=V lines as in "
                          "deploy/connections.env (docker compose env_file)")
    return p


def _world_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--now", type=utc, default=None,
                   help="world clock (ISO 8601); default: a day after the last run ended")


def connections(host: str, port: int, workspace: str = "tracker", cert_class: str = "Collisions24",
                cert_kind: str = "golden", oms_via: str = "direct") -> dict[str, dict]:
    """The four connections, in Airflow's JSON form, as dialsflow reads them."""
    base = f"http://{host}:{port}"
    return {
        "dials_default": {
            "conn_type": "http", "host": f"{base}/", "login": DEFAULT_CLIENT_ID,
            "password": DEFAULT_CLIENT_SECRET,
            "extra": {"workspace": workspace, "auth": "client_credentials",
                      # no "realm": the default "cern" is under 5 characters, and
                      # Airflow masks every string of an extra as a secret
                      "keycloak_url": f"{base}/auth/",
                      "audience": DIALS_AUDIENCE, "verify": True},
        },
        "oms_default": {
            "conn_type": "http", "host": f"{base}/agg/api", "login": DEFAULT_CLIENT_ID,
            "password": DEFAULT_CLIENT_SECRET,
            "extra": {"token_url": f"{base}/auth/realms/cern/api-access/token",
                      "audience": OMS_AUDIENCE, "via": oms_via, "verify": True},
        },
        "dbs_default": {
            "conn_type": "http", "host": f"{base}/dbs/prod/global/DBSReader",
            "extra": {"cert": None, "key": None, "verify": True},
        },
        "caf_default": {
            "conn_type": "http", "host": f"{base}/CAF/certification",
            "extra": {"class": cert_class, "kind": cert_kind, "verify": True},
        },
    }


def connection_env(host: str, port: int, **options: str) -> dict[str, str]:
    """`AIRFLOW_CONN_<ID>` variables (JSON form) for an emulator at host:port, plus
    DIALSFLOW_EMULATOR_URL: what `env` prints, for processes started from Python."""
    env = {f"AIRFLOW_CONN_{conn_id.upper()}": orjson.dumps(conn).decode()
           for conn_id, conn in connections(host, port, **options).items()}
    env["DIALSFLOW_EMULATOR_URL"] = f"http://{host}:{port}"
    return env


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "truth":
        world = build_world(args.profile, args.seed)
        sys.stdout.buffer.write(orjson.dumps(world.truth(args.now), option=orjson.OPT_INDENT_2))
        sys.stdout.write("\n")
        return 0
    if args.command == "env":
        env = connection_env(args.host, args.port, workspace=args.workspace,
                             cert_class=args.cert_class, cert_kind=args.cert_kind,
                             oms_via=args.oms_via)
        for key, value in env.items():
            print(f"{key}={value}" if args.format == "dotenv"
                  else f"export {key}={shlex.quote(value)}")
        return 0
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    try:
        from .server import serve
    except ModuleNotFoundError as exc:  # a base install: the web stack is the extra's
        print(f"dialsflow-emulator: error: serve needs the emulator extra ({exc.name} is "
              'missing): pip install "dialsflow[emulator]"', file=sys.stderr)
        return 2
    from .process import port_in_use
    from .state import EmulatorState

    kinds = tuple(k.strip() for k in args.fault_kinds.split(",") if k.strip())
    unknown = set(kinds) - {"502", "503", "504", "429", "reset", "truncate"}
    if unknown:
        print(f"dialsflow-emulator: unknown fault kind(s): {', '.join(sorted(unknown))}",
              file=sys.stderr)
        return 2
    if not 0.0 <= args.fault_rate <= 1.0:
        print("dialsflow-emulator: --fault-rate must be between 0 and 1", file=sys.stderr)
        return 2
    for flag, value, low in (("--server-workers", args.server_workers, 1),
                             ("--gateway-timeout-s", args.gateway_timeout_s, 0.001),
                             ("--server-ms-per-mb", args.server_ms_per_mb, 0.0),
                             ("--server-base-ms", args.server_base_ms, 0.0)):
        if not value >= low:
            print(f"dialsflow-emulator: {flag} must be at least {low:g}", file=sys.stderr)
            return 2
    clients = {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
    for item in args.client:
        cid, sep, secret = item.partition(":")
        if not sep or not cid or not secret:
            print("dialsflow-emulator: --client takes ID:SECRET", file=sys.stderr)
            return 2
        clients[cid] = secret
    login = _login_settings(args, clients)
    if isinstance(login, str):
        print(f"dialsflow-emulator: {login}", file=sys.stderr)
        return 2
    settings = Settings(profile=args.profile, seed=args.seed, latency_ms=args.latency_ms,
                        fault_rate=args.fault_rate, fault_kinds=kinds,
                        fault_max_consecutive=args.fault_max_consecutive,
                        retry_after_s=args.retry_after, token_ttl=args.token_ttl, clients=clients,
                        server_workers=args.server_workers,
                        gateway_timeout_s=args.gateway_timeout_s,
                        server_ms_per_mb=args.server_ms_per_mb,
                        server_base_ms=args.server_base_ms, gzip=args.gzip,
                        users=login[0], login_clients=login[1], code_ttl=args.code_ttl)
    if port_in_use(args.host, args.port):
        print(f"dialsflow-emulator: error: port {args.port} on {args.host} is already in use; "
              f"choose another with --port (make emulator PORT={args.port + 1})",
              file=sys.stderr)
        return 2
    world = build_world(args.profile, args.seed)
    state = EmulatorState(world, settings, issuer=f"http://{args.host}:{args.port}/auth/realms/cern",
                          now=args.now)
    print(f"dialsflow-emulator: profile={args.profile} seed={args.seed} "
          f"now={state.now.isoformat()} listening on http://{args.host}:{args.port}", flush=True)
    serve(state, args.host, args.port)
    return 0


def _login_settings(args: argparse.Namespace, clients: dict[str, str]
                    ) -> tuple[dict[str, User], dict[str, tuple[str, ...]]] | str:
    """Accounts and login clients from --user and --login-client, or what is wrong."""
    users: dict[str, User] = {}
    for item in args.user:
        name, password, roles = [*item.split(":", 2), "", ""][:3]
        if not name or not password:
            return "--user takes NAME:PASSWORD:ROLES"
        users[name] = User(password, tuple(r for r in roles.split(",") if r))
    login_clients: dict[str, tuple[str, ...]] = {}
    for item in args.login_client:
        cid, sep, uri = item.partition("=")
        if not sep or not uri:
            return "--login-client takes ID=URI"
        if cid not in clients:
            return f"--login-client {cid}: register the client first (--client {cid}:SECRET)"
        login_clients[cid] = (*login_clients.get(cid, ()), uri)
    if args.code_ttl < 1:
        return "--code-ttl must be at least 1"
    return users or dict(DEFAULT_USERS), login_clients


if __name__ == "__main__":
    sys.exit(main())
