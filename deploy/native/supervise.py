"""Compose's `restart: always`, natively: `python deploy/native/supervise.py NAME -- CMD...`.

Run by path as a script (the component's working directory is its AIRFLOW_HOME, where the
`deploy` package is not importable), so it imports nothing but the standard library.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

RESTART_MARK = "deploy-local: restart policy:"


def supervise(name: str, cmd: list[str]) -> int:
    """Compose's `restart: always`, natively: run `cmd` (same process group, same output)
    and start it again whenever it exits by itself, after 1 s doubling up to 30 s (back to
    1 s once it ran a minute). SIGTERM/SIGINT of the group (what `stop` sends) end the loop;
    the component gets the signal itself as a member of the group."""
    stopping = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    delay = 1.0
    while True:
        began = time.monotonic()
        code = subprocess.Popen(cmd).wait()
        if stopping:
            return code
        if time.monotonic() - began > 60:
            delay = 1.0
        print(f"{RESTART_MARK} {name} exited with code {code}; starting it again in "
              f"{delay:.0f} s", flush=True)
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping:
            return code
        delay = min(delay * 2, 30.0)


def main(argv: list[str]) -> int:
    """`NAME -- CMD...` (the `--` is optional)."""
    if len(argv) < 2:
        print("usage: supervise.py NAME -- CMD...", file=sys.stderr)
        return 2
    name, cmd = argv[0], argv[1:]
    return supervise(name, cmd[1:] if cmd[:1] == ["--"] else cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
