"""A stack's OpenAI-compatible server (the `ServerKind` its folder's `serve.py` declares), started as a
child process, health-checked before any load, and stopped after."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.errors import UserError
from bench.stacks.base import ServerKind


class ServerDied(Exception):
    """The server exited, or never answered its health check: the run stops, exit 1."""


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])[-600:]
    except OSError:
        return ""


@dataclass(frozen=True)
class Running:
    url: str
    pid: int


@contextlib.contextmanager
def serve(kind: ServerKind, model_dir: Path, port: int, log: Path, settings: dict | None = None, timeout_s=600):
    """Start the server, wait for /health, yield it running (its base URL and process id); stop it
    (SIGTERM, then SIGKILL) after."""
    settings = settings or {}
    url = f"http://127.0.0.1:{port}"
    if healthy(url):
        raise UserError(f"port {port} already answers /health: another server is running there")
    env = os.environ | kind.env(settings)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            kind.command(model_dir, port, settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    watchdog = _watch(proc.pid)
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + timeout_s
        while not healthy(url):
            if proc.poll() is not None:
                raise ServerDied(f"{kind.name} exited with status {proc.returncode} before it was ready: {_tail(log)}")
            if time.monotonic() > deadline:
                raise ServerDied(f"{kind.name} did not answer /health within {timeout_s:.0f} s: {_tail(log)}")
            time.sleep(0.5)
        family = _family(proc.pid)  # its engine processes: they outlive a server that dies first
        yield Running(url, proc.pid)
    finally:
        stop(proc, family)
        watchdog.kill()
        watchdog.wait()


# Run by a process of its own beside the server: when the process that started the server is gone without
# stopping it (SIGKILL, the OOM killer), it stops the server's whole process group (the server started in
# a session of its own; its engine processes are in its group), SIGTERM then SIGKILL. It ignores Ctrl-C:
# the run's own handling stops the server then.
_WATCHDOG = """
import os, signal, sys, time
owner, group = int(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
while alive(owner) and os.getppid() == owner:
    time.sleep(0.5)
for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 0)):
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        break
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            sys.exit(0)
        time.sleep(0.2)
"""


def _watch(server_pid: int) -> subprocess.Popen:
    """A watchdog that stops the server's process group if this process dies without stopping it."""
    import sys

    return subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(server_pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _family(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return []


def stop(proc: subprocess.Popen, family: list[psutil.Process], grace_s: float = 15.0) -> None:
    """SIGTERM to the server and every process it started (those seen when it became ready, and those there
    now), SIGKILL to any left after the grace: no engine process outlives the run, even when the server
    itself died first."""
    procs = {p.pid: p for p in [*family, *_family(proc.pid)]}
    for p in procs.values():
        with contextlib.suppress(psutil.Error):
            p.terminate()  # psutil checks the process is still the one seen (no reused pid is signalled)
    _, alive = psutil.wait_procs(list(procs.values()), timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
