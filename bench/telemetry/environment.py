"""What ran: host, device, driver, library versions, git revision, image reference."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import psutil

from bench import __version__
from bench.telemetry.gpu import Gpu


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """The installed version of each distribution named that is installed."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> dict:
    """The source revision: from the image's environment when baked in, else from git."""
    if os.environ.get("PAGEDBENCH_GIT_SHA"):
        return {"sha": os.environ["PAGEDBENCH_GIT_SHA"], "dirty": os.environ.get("PAGEDBENCH_GIT_DIRTY") == "1"}
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
        )
        return {"sha": sha, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


# Environment variables that change how torch, CUDA and the engines run (the allocator, SDPA's backend
# order, visible devices, vLLM's own settings): recorded by name and value, those naming a secret left out.
_SETTING_PREFIXES = ("PYTORCH_", "TORCH_", "CUDA_", "CUDNN_", "CUBLAS_", "NCCL_", "VLLM_")
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def runtime_settings(environ=os.environ) -> dict[str, str]:
    """The environment variables a run's speed or memory can depend on, sorted by name."""
    return {
        name: environ[name]
        for name in sorted(environ)
        if name.startswith(_SETTING_PREFIXES) and not any(w in name.upper() for w in _SECRET_WORDS)
    }


def sdpa_backends(torch) -> dict[str, bool]:
    """Which of scaled_dot_product_attention's backends are enabled (torch picks among them per call;
    on Hopper and Blackwell with cuDNN 9.15 or later it tries cuDNN first)."""
    cuda = torch.backends.cuda
    return {
        "cudnn": cuda.cudnn_sdp_enabled(),
        "flash": cuda.flash_sdp_enabled(),
        "mem_efficient": cuda.mem_efficient_sdp_enabled(),
        "math": cuda.math_sdp_enabled(),
    }


def torch_state() -> dict:
    """What the imported torch runs with now: its CUDA and cuDNN, its threads, SDPA's enabled backends (a
    runner may change those as it loads: HfScenario.cudnn_attention). Nothing where torch is not imported:
    it is never imported here, the collector has none."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    return {
        "torch_cuda": torch.version.cuda,
        "torch_threads": torch.get_num_threads(),
        "torch_cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "sdpa_backends": sdpa_backends(torch),
    }


def collect(gpu: Gpu | None = None, packages: Sequence[str] = ()) -> dict:
    """What a result records of where it ran; `packages`: the distributions whose versions to record."""
    gpu = gpu if gpu is not None else Gpu()
    env = {
        "pagedbench": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "host_memory_mib": psutil.virtual_memory().total / 2**20,
        "packages": package_versions(packages),
        "git": git_revision(),
        "image": os.environ.get("PAGEDBENCH_IMAGE"),
        "cuda_variant": os.environ.get("PAGEDBENCH_CUDA_VARIANT"),
        "lock": os.environ.get("PAGEDBENCH_LOCK"),  # the image's lock file (docker/locks/)
        "gpu": gpu.info() or None,
        "settings": runtime_settings(),
    }
    env |= torch_state()
    if gpu.available:
        me = os.getpid()
        others = [{"pid": pid, "used_mib": used} for pid, used in gpu.processes() if pid != me]
        env["gpu_processes_before"] = others
    return env
