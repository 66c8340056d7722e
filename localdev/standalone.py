"""`make airflow`: `airflow standalone` (UI on :8080) wired to a running emulator.

For a newcomer to open the UI, trigger `dials_ingest` with Params, create backfills and read
task logs. The emulator serves the demo world with its clock at NIGHT and stays up as long
as Airflow does; Ctrl-C stops both. State lives in `.airflow/standalone/` (kept between starts:
delete it to start over).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from dialsflow_emulator.process import EmulatorProcess, port_in_use

from .airflow_home import AIRFLOW, ROOT, LocalAirflow, state_home
from .demo import NIGHT

END_DATE = (date.fromisoformat(NIGHT[:10]) + timedelta(days=1)).isoformat()

HELP = """\
dialsflow: Airflow UI on http://localhost:{port}/  (user admin; password in
  {home}/simple_auth_manager_passwords.json.generated once Airflow has started)
  - DAG dials_ingest starts paused and ends on {end} (its world ends: no scheduled run for
    today): unpause it, then Trigger → Single Run with a logical date such as {day} 12:00
    UTC (the emulator's world clock is {night}), or
    Trigger → Backfill for a few days before it. Every night ingests what the Golden
    JSON in force certifies and the manifest lacks, whatever its date.
  - Params: jobs, runs (e.g. 379433,379439), force, test.
  - Failed task → Grid → red cell → Logs. Parquet lands in {output}.
  - Emulator on {emu}; its log: {emu_log}. Ctrl-C stops everything.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m localdev.standalone",
                                description=__doc__)
    p.add_argument("--home", type=Path, default=state_home("standalone"))
    p.add_argument("--output", type=Path, default=ROOT / "out" / "local")
    p.add_argument("--port", type=int, default=8080,
                   help="Airflow UI/API port (make airflow PORT=...)")
    p.add_argument("--emulator-port", type=int, default=8765,
                   help="the emulator's port (make airflow EMULATOR_PORT=...)")
    args = p.parse_args(argv)
    # Each as its server binds it: Airflow's api-server on every interface, the emulator on
    # loopback. Checked before anything starts: a busy port is one line, not a traceback.
    for host, port, what, variable, flag in (
            ("0.0.0.0", args.port, "Airflow UI", "PORT", "--port"),  # noqa: S104
            ("127.0.0.1", args.emulator_port, "emulator", "EMULATOR_PORT", "--emulator-port")):
        if port_in_use(host, port):
            print(f"dialsflow: error: port {port} ({what}) is already in use; choose another: "
                  f"make airflow {variable}={port + 1} (here: {flag} {port + 1})",
                  file=sys.stderr)
            return 2
    args.home.mkdir(parents=True, exist_ok=True)
    emu_log = args.home / "emulator.log"
    emulator = EmulatorProcess("--now", NIGHT, port=args.emulator_port, log_path=emu_log)
    try:
        emulator.start()
    except RuntimeError as exc:  # taken meanwhile, or the world failed to build
        print(f"dialsflow: error: {exc}; see {emu_log}", file=sys.stderr)
        return 1
    try:
        return _run(args, emulator, emu_log)
    finally:
        emulator.stop()


def _run(args: argparse.Namespace, emu: EmulatorProcess, emu_log: Path) -> int:
    """`airflow standalone` against the started emulator, until it ends or Ctrl-C."""
    airflow = LocalAirflow(args.home / "home", emu, args.output,
                           extra_env={
                               # the demo world ends: no scheduled run for today's
                               # interval when the DAG is unpaused (docs/operations.md)
                               "DIALSFLOW_END_DATE": END_DATE,
                               "AIRFLOW__API__PORT": str(args.port),
                               "AIRFLOW__CORE__EXECUTION_API_SERVER_URL":
                                   f"http://localhost:{args.port}/execution/"})
    airflow.setup()
    print(HELP.format(port=args.port, home=airflow.home, night=NIGHT, day=NIGHT[:10],
                      end=END_DATE, output=args.output,
                      emu=emu.url, emu_log=emu_log), flush=True)
    env = {**airflow.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                  f"{os.environ.get('PATH', '')}"}
    # Own process group: one SIGTERM reaches standalone and the components it started
    # (standalone ignores SIGINT when it is not in the terminal's foreground).
    proc = subprocess.Popen([AIRFLOW, "standalone"], env=env, cwd=ROOT,
                            start_new_session=True)
    signal.signal(signal.SIGTERM, lambda *_: _stop(proc))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        return 130


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
