"""Images, compose and locks, checked without a Docker engine."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.telemetry.environment import PACKAGES

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
LOCKS = sorted((ROOT / "docker" / "locks").glob("*.txt"))


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text())  # resolves the anchors and merge keys


def test_gpu_reservation_on_both_stacks_only(compose):
    for name in ("hf", "vllm"):
        devices = compose["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "device_ids": ["${GPU:-0}"], "capabilities": ["gpu"]}]
    assert "deploy" not in compose["services"]["collector"]


def test_results_shared_and_models_read_only(compose):
    for name in ("hf", "vllm", "collector"):
        assert "${RESULTS:-./results}:/results" in compose["services"][name]["volumes"]
    for name in ("hf", "vllm"):
        s = compose["services"][name]
        assert "models:/models:ro" in s["volumes"] and s["read_only"] is True
        assert s["environment"]["HF_HUB_OFFLINE"] == "1"
    assert "models:/models" in compose["services"]["prepare"]["volumes"]


def test_order_stacks_never_share_the_gpu(compose):
    s = compose["services"]
    assert s["vllm"]["depends_on"] == {"hf": {"condition": "service_completed_successfully"}}
    assert set(s["collector"]["depends_on"]) == {"hf", "vllm"}
    assert s["vllm"]["shm_size"]


def test_no_token_baked_into_images():
    for f in DOCKERFILES:
        assert "HF_TOKEN" not in f.read_text()


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose (Debian's parser) not installed")
def test_compose_parser_accepts_it():
    out = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "RUN_ID": "t"},
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert config["services"]["hf"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert config["services"]["collector"]["command"][1] == "/results/t"


def test_no_latest_tags():
    texts = [f.read_text() for f in DOCKERFILES] + [
        (ROOT / "compose.yaml").read_text(),
        (ROOT / "Makefile").read_text(),
    ]
    for text in texts:
        assert ":latest" not in text
    for f in DOCKERFILES:
        base = re.search(r"^ARG (?:CUDA|PYTHON)_BASE=(\S+)$", f.read_text(), re.M).group(1)
        assert re.search(r":\d+\.\d+\.\d+-", base), f"{f.name}: base {base} is not an exact tag"


def test_images_run_as_non_root():
    for f in DOCKERFILES:
        users = re.findall(r"^USER (\S+)$", f.read_text(), re.M)
        assert users and users[-1] not in ("root", "0")


def pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", path.read_text(), re.M))


def test_locks_are_complete_and_hashed():
    assert {p.name for p in LOCKS} >= {"hf-cu130.txt", "vllm-cu130.txt", "collector.txt"}
    for lock in LOCKS:
        text = lock.read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.strip())
        for entry in entries:
            if entry.startswith("#"):
                continue
            assert "==" in entry and "--hash=sha256:" in entry, f"{lock.name}: unhashed entry {entry.splitlines()[0]}"


@pytest.mark.parametrize("stack", ["hf", "vllm", "collector"])
def test_locks_pin_the_requested_versions(stack):
    """What the images install is what requirements/*.in asked for, and so what results will report."""
    wanted: dict[str, str] = {}
    for line in (ROOT / "docker" / "requirements" / f"{stack}.in").read_text().splitlines():
        if line.startswith("-r "):
            wanted |= pins(ROOT / "docker" / "requirements" / line.split()[1])
    wanted |= pins(ROOT / "docker" / "requirements" / f"{stack}.in")
    for lock in LOCKS:
        if lock.name.startswith(stack):
            locked = {k.lower(): v for k, v in pins(lock).items()}
            for name, version in wanted.items():
                assert locked.get(name.lower()) == version, (
                    f"{lock.name}: {name} {locked.get(name.lower())} != {version}"
                )
            reported = [p for p in PACKAGES if p in locked]
            assert stack == "collector" or {"torch", "transformers"} <= set(reported)


def test_validated_versions_in_the_stacks():
    hf = pins(ROOT / "docker" / "locks" / "hf-cu130.txt")
    vllm = pins(ROOT / "docker" / "locks" / "vllm-cu130.txt")
    assert hf["torch"] == vllm["torch"] == "2.11.0" and vllm["vllm"] == "0.26.0"
    assert hf["transformers"].startswith("5.17.") and "torch" not in pins(ROOT / "docker" / "locks" / "collector.txt")


def test_collector_lock_resolves(tmp_path):
    """Every pinned file exists with its hash (downloads the small collector set; skipped offline)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--no-deps",
        "--require-hashes",
        "--ignore-installed",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--platform",
        "manylinux_2_28_x86_64",
        "--platform",
        "manylinux_2_17_x86_64",
        "--platform",
        "manylinux2014_x86_64",
        "--target",
        str(tmp_path),
        "--timeout",
        "20",
        "-r",
        str(ROOT / "docker" / "locks" / "collector.txt"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0 and ("NewConnectionError" in out.stderr or "Temporary failure" in out.stderr):
        pytest.skip("package index not reachable")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Would install" in out.stdout


def test_preflight_driver_check(tmp_path):
    def smi(driver: str, apps: str = "") -> Path:
        f = tmp_path / f"smi-{driver}"
        f.write_text(
            f"#!/bin/sh\ncase \"$*\" in *driver_version*) echo {driver};; *compute-apps*) printf '{apps}';;"
            " *) echo 'NVIDIA H100 80GB HBM3';; esac\n"
        )
        f.chmod(0o755)
        return f

    def preflight(variant, driver, apps="", strict="0"):
        return subprocess.run(
            ["bash", str(ROOT / "scripts" / "preflight.sh"), variant, "0"],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "NVIDIA_SMI": str(smi(driver, apps)), "STRICT_GPU": strict},
        )

    ok = preflight("cu130", "580.95.05")
    assert ok.returncode == 0 and "ok for cu130" in ok.stdout
    old = preflight("cu130", "570.124.06")
    assert old.returncode == 2 and "make bench CUDA=cu128" in old.stderr
    ancient = preflight("cu130", "535.104.05")
    assert ancient.returncode == 2 and "upgrade the driver" in ancient.stderr
    busy = preflight("cu130", "580.95.05", apps="1234, 2000 MiB\\n", strict="1")
    assert busy.returncode == 3 and "other process" in busy.stderr
    assert preflight("cu130", "580.95.05", apps="1234, 2000 MiB\\n").returncode == 0
