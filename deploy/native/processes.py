"""The deployment's processes: each in a process group of its own, told apart from reused
PIDs by its start time, started under the restart policy and stopped or killed as a tree."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from .deployment import DeployError, Deployment, Proc
from .supervise import RESTART_MARK

SUPERVISOR = Path(__file__).with_name("supervise.py")  # run as a script: stdlib only


def _stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """Process start time in clock ticks since boot; None when the PID is gone or a zombie
    (reaped here when it is our child, as in `start`)."""
    stat = _stat(pid)
    if stat is None:
        return None
    if stat[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return None
    return int(stat[19])


def group_alive(proc: Proc) -> bool:
    """True while any process of our group runs (the leader may have exited before its
    children); False when the PID now belongs to someone else."""
    ticks = start_ticks(proc.pid)
    if ticks is not None:
        return ticks == proc.start_ticks
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _stat(entry.name)
        if stat is not None and stat[0] != "Z" and stat[2] == str(proc.pid):
            return True
    return False


def signal_group(proc: Proc, sig: int) -> None:
    if group_alive(proc):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def spawn(name: str, cmd: list[str], env: dict[str, str], logs: Path, *,
          supervised: bool = False) -> Proc:
    """Start `cmd` in a process group of its own, output appended to logs/<name>.log;
    `supervised`: under the SUPERVISOR (restarted whenever it exits by itself)."""
    log = logs / f"{name}.log"
    if supervised:
        cmd = [sys.executable, str(SUPERVISOR), name, "--", *cmd]
    with open(log, "ab") as out:
        offset = out.tell()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, cwd=env["AIRFLOW_HOME"], start_new_session=True)
    return Proc(name, p.pid, start_ticks(p.pid) or 0, str(log), offset)


def restarted(proc: Proc) -> bool:
    """Whether the restart policy had to start the component again since `proc` began."""
    try:
        with open(proc.log, "rb") as fh:
            fh.seek(proc.log_offset)
            return RESTART_MARK.encode() in fh.read()
    except OSError:
        return False


def tail(path: str, lines: int = 25) -> str:
    """The last lines of a log, for error messages."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children that left its process group included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _stat(entry.name)
        if stat is not None and stat[0] != "Z":
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: Proc) -> None:
    """SIGKILL a component's process group and every descendant: a crash, not a stop."""
    if not group_alive(proc):
        return
    victims = [proc.pid, *_descendants(proc.pid)]
    signal_group(proc, signal.SIGKILL)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def wait_for(check: Callable[[], object], timeout: float, what: str, dep: Deployment) -> None:
    """Poll `check` each second; fail early, with its log, when a process of `dep` exits or
    had to be restarted, and with every log's tail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in dep.procs:
            if not group_alive(p) or restarted(p):
                raise DeployError(f"{p.name} exited while waiting for {what}; its log "
                                  f"{p.log} ends:\n{tail(p.log)}")
        with contextlib.suppress(requests.RequestException, OSError, ValueError):
            if check():
                return
        time.sleep(1)
    tails = "\n".join(f"--- {p.name} ({p.log})\n{tail(p.log, 8)}" for p in dep.procs)
    raise DeployError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")
