import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """Synthetic models are built once per test session into a private cache."""
    cache = os.environ.get("PAGEDBENCH_TEST_CACHE") or str(tmp_path_factory.mktemp("pbcache"))
    os.environ["PAGEDBENCH_CACHE"] = cache
    yield Path(cache)


def running(*marks: str, among=None) -> list[str]:
    """The command lines (cut at 80 characters) of running processes that name any of `marks`, of those
    with the pids `among` (default: all)."""
    import psutil

    found = []
    for pid in psutil.pids() if among is None else among:
        try:
            line = " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            continue
        if any(mark in line for mark in marks):
            found.append(line[:80])
    return found


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run `python -m bench ...` in a fresh process (vLLM's engine core is spawned: it needs a real main)."""
    return _run([sys.executable, "-m", "bench", *map(str, args)], cwd, env, timeout)


def run_script(name: str, *args, cwd=None, env=None, timeout=600):
    """Run scripts/<name>.py with `args` in a fresh process, from the repository's root."""
    return _run([sys.executable, str(ROOT / "scripts" / f"{name}.py"), *map(str, args)], cwd, env, timeout)


def _run(cmd: list[str], cwd, env, timeout):
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd or ROOT, env={**os.environ, **(env or {})},
                          timeout=timeout)  # fmt: skip


def script(name: str):
    """scripts/<name>.py loaded as a module, to call its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def gpu_available() -> bool:
    return shutil.which("nvidia-smi") is not None and has("torch") and __import__("torch").cuda.is_available()
