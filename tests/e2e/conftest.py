"""A real Docker engine for the end-to-end tests: the one configured (DOCKER_HOST, the default socket), or,
as root where dockerd is installed, one started for the session with its storage kept between sessions so
that images and the base are reused. The CPU images are built once; every test then drives `make` as a
non-root user, as a user of a GPU host would."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Kept between sessions: the engine's storage (images, build cache, volumes) and the base's root file system.
STATE = Path(os.environ.get("PAGEDBENCH_TEST_DOCKER_STATE", "/var/tmp/pagedbench-test-docker"))
DEBIAN_BASE = "debian:12.15-slim"  # the Makefile's default
LOCAL_BASE = "pagedbench-test/bookworm:minbase"
TEST_UID = 1000


def docker(host: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, "DOCKER_HOST": host}
    )


def answers(host: str) -> bool:
    try:
        return docker(host, "info", timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Engine:
    host: str
    started: subprocess.Popen | None = None


def _start_dockerd(group: str) -> Engine | str:
    if os.geteuid() != 0:
        return "no Docker engine answers, and starting one needs root"
    if not shutil.which("dockerd"):
        return "no Docker engine answers, and dockerd is not installed (make tools installs Debian's docker.io)"
    STATE.mkdir(parents=True, exist_ok=True)
    sock = STATE / "docker.sock"
    host = f"unix://{sock}"
    if answers(host):  # left running by an earlier session
        return Engine(host)
    pidfile = STATE / "docker.pid"
    if pidfile.exists() and not Path(f"/proc/{pidfile.read_text().strip()}").exists():
        pidfile.unlink()  # from a daemon that did not stop cleanly: dockerd refuses to start beside it
    # overlay2 where the kernel and file system allow it, else vfs, which works anywhere but copies every
    # layer in full. No bridge or iptables: builds use the host's network and the services need none.
    for driver in ("overlay2", "vfs"):
        log = open(STATE / "dockerd.log", "ab")
        proc = subprocess.Popen(
            [
                "dockerd",
                f"--storage-driver={driver}",
                "--iptables=false",
                "--bridge=none",
                "--data-root",
                str(STATE / f"data-{driver}"),
                "--exec-root",
                str(STATE / "exec"),
                "--pidfile",
                str(pidfile),
                "-H",
                host,
                "--group",
                group,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if answers(host):
                return Engine(host, started=proc)
            time.sleep(0.5)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
    return f"dockerd did not start (overlay2 nor vfs): see {STATE / 'dockerd.log'}"


def _user() -> pwd.struct_passwd | None:
    """The non-root user the tests run `make` as (uid 1000, created when missing); None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwuid(TEST_UID)
    except KeyError:
        subprocess.run(["useradd", "--uid", str(TEST_UID), "--create-home", "pagedbench-e2e"], check=True)
        return pwd.getpwuid(TEST_UID)


def _base(host: str) -> str | None:
    """The Debian base of the CPU images: the default tag if the engine has it or can pull it, else one made
    from Debian's archive by the recipe preflight gives (scripts/base-image.sh), under a tag of the tests'
    own, so that an engine of the user's never holds a made-up image under Debian's name."""
    if docker(host, "image", "inspect", DEBIAN_BASE).returncode == 0:
        return DEBIAN_BASE
    if docker(host, "image", "inspect", LOCAL_BASE).returncode == 0:
        return LOCAL_BASE
    if docker(host, "pull", DEBIAN_BASE, timeout=300).returncode == 0:
        return DEBIAN_BASE
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        return None
    subprocess.run(
        [str(ROOT / "scripts" / "base-image.sh"), LOCAL_BASE],
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_HOST": host},
        timeout=1500,
    )
    return LOCAL_BASE


def _buildkit_path(host: str) -> str:
    """PATH for a docker client that builds with BuildKit where this host has one: its buildx plugin, or an
    engine's own client from before BuildKit moved into buildx (Debian's docker.io) ahead of a newer client
    without it. Without either, make chooses the legacy builder itself."""
    path = os.environ["PATH"]
    if docker(host, "buildx", "version").returncode == 0:
        return path
    for client in ("/usr/bin/docker",):
        out = subprocess.run([client, "--version"], capture_output=True, text=True)  # Docker version 20.10.24...
        version = re.search(r"version (\d+)\.", out.stdout) if out.returncode == 0 else None
        if version and int(version.group(1)) < 23:
            (STATE / "bin").mkdir(parents=True, exist_ok=True)
            link = STATE / "bin" / "docker"
            link.unlink(missing_ok=True)
            link.symlink_to(client)
            return f"{link.parent}:{path}"
    return path


def _pip_environment() -> dict[str, str]:
    """This host's pip settings that the build needs (a CA bundle, a find-links directory), as a user's own
    pip configuration would give them: make finds them there (scripts/docker-auto.sh)."""
    found = {}
    for env, key in (("PIP_CERT", "global.cert"), ("PIP_FIND_LINKS", "global.find-links")):
        value = os.environ.get(env, "")
        if not value:
            out = subprocess.run(["python3", "-m", "pip", "config", "get", key], capture_output=True, text=True)
            value = out.stdout.strip() if out.returncode == 0 else ""
        if value:
            found[env] = value
    return found


@dataclass
class Pipeline:
    """A copy of the working tree owned by the test user, and `make` run there as that user."""

    engine: Engine
    tree: Path
    results: Path
    knobs: dict[str, str]
    user: pwd.struct_passwd | None
    path: str
    pip: dict[str, str]

    def make(self, *args: str, timeout: float = 1800, env: dict[str, str] | None = None):
        cmd = ["make", "--no-print-directory", *args, *(f"{k}={v}" for k, v in self.knobs.items())]
        full_env = {
            "PATH": self.path,
            "DOCKER_HOST": self.engine.host,
            "HOME": self.user.pw_dir if self.user else os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            **self.pip,
            **(env or {}),
        }
        if self.user:
            cmd = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--init-groups", *cmd]
        return subprocess.run(cmd, cwd=self.tree, capture_output=True, text=True, timeout=timeout, env=full_env)

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """docker-compose with the variables make would pass (make's own COMPOSE picks the same tool)."""
        out = self.make("-s", "compose-env", "DEVICE=cpu")
        env = {}
        for line in out.stdout.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
        plugin = docker(self.engine.host, "compose", "version").returncode == 0  # as the Makefile chooses
        tool = ["docker", "compose"] if plugin else ["docker-compose"]
        return subprocess.run(
            [*tool, *args],
            cwd=self.tree,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **env, "DOCKER_HOST": self.engine.host, "PATH": self.path},
        )


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    for host in filter(None, [os.environ.get("DOCKER_HOST"), "unix:///var/run/docker.sock"]):
        if answers(host):
            yield Engine(host)
            return
    user = _user()
    group = "root" if user is None else str(user.pw_gid)
    found = _start_dockerd(group)
    if isinstance(found, str):
        pytest.skip(f"end-to-end tests skipped: {found}")
    yield found
    if found.started is not None:
        found.started.terminate()
        try:
            found.started.wait(timeout=60)
        except subprocess.TimeoutExpired:
            found.started.kill()


@pytest.fixture(scope="session")
def pipeline(engine):
    if not (shutil.which("docker-compose") or docker(engine.host, "compose", "version").returncode == 0):
        pytest.skip("end-to-end tests skipped: neither docker compose nor docker-compose is installed")
    base = _base(engine.host)
    if base is None:
        pytest.skip(f"end-to-end tests skipped: no {DEBIAN_BASE} image, no registry and no debootstrap to make one")
    user = _user()
    # Not under pytest's private temporary directory: the test user must reach it.
    top = Path(tempfile.mkdtemp(prefix="pagedbench-e2e-"))
    tree, results = top / "checkout", top / "results"
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / name)
    (tree / "docker" / "pip-extra").mkdir(parents=True, exist_ok=True)
    results.mkdir()
    if user:
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(top)], check=True)
        top.chmod(0o755)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    # The knobs a user of this host gives: where results go, and the base when Debian's cannot be pulled.
    # The rest (BuildKit or not, the networks, pip's CA bundle and wheels) make finds for itself.
    knobs = {"RESULTS": str(results), "GIT_SHA": sha or "unknown", "GIT_DIRTY": "1"}
    knobs |= {"COMPOSE_PROJECT_NAME": "pagedbench-e2e"} | ({"DEBIAN_BASE": base} if base != DEBIAN_BASE else {})
    # A fresh models volume, so that this session's prepare builds the model the stacks then read.
    docker(engine.host, "volume", "rm", "-f", f"{knobs['COMPOSE_PROJECT_NAME']}_models")
    p = Pipeline(engine, tree, results, knobs, user, _buildkit_path(engine.host), _pip_environment())
    built = p.make("build", "DEVICE=cpu", timeout=3000)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    yield p
    shutil.rmtree(top, ignore_errors=True)
