"""A stack's OpenAI-compatible server, started as a child process, health-checked before any load, and
stopped after: what each stack's folder declares (`serve.py`'s SERVER) and how it is run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.errors import UserError


@dataclass(frozen=True)
class ServeRequest:
    index: int
    prompt: str  # text: every server tokenizes it with the model's own tokenizer
    prompt_tokens: int  # what that tokenizer counts
    output_len: int


@dataclass(frozen=True)
class ServerKind:
    """How to start one stack's server and talk to it. `command(model_dir, port, settings)` is its command
    line; `body(model, request)` the /v1/completions body forcing exactly the request's output length
    with the fields that server accepts; `chunk_tokens(choice)`: how many tokens a streamed choice
    carried, where the server says (their sum must agree with its usage), else None."""

    name: str
    command: Callable[[Path, int, dict], list[str]]
    body: Callable[[str, ServeRequest], dict]
    chunk_tokens: Callable[[dict], int | None] = lambda choice: None  # noqa: E731
    env: Callable[[dict], dict] = lambda settings: {}  # noqa: E731
    # What the server exposes about its KV cache during load: a Prometheus page's path, or None, and the
    # metrics kept from it on the load's timeline (its names -> ours: kv_usage, running, waiting, ...).
    metrics_path: str | None = None
    metrics: dict[str, str] = field(default_factory=dict)
    lacks: tuple[str, ...] = ()  # engine settings the server has no way to honour: a scenario setting one is refused


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
