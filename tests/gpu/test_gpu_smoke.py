"""The smoke suite on a real NVIDIA GPU: both stacks, NVML telemetry, memory breakdown. Skipped without one."""

import pytest

from bench.results import Result, scan_results
from tests.conftest import gpu_available, has, run_cli

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="no NVIDIA GPU visible to torch")]


@pytest.mark.parametrize("stack", ["hf", "vllm"])
def test_smoke_on_gpu(stack, tmp_path):
    if stack == "vllm" and not has("vllm"):
        pytest.skip("vLLM is not installed")
    r = run_cli(
        "run",
        "--stack",
        stack,
        "--suite",
        "smoke",
        "--device",
        "cuda",
        "--out",
        tmp_path,
        "--run-id",
        stack,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    results = [x for _, x in scan_results(tmp_path)]
    assert results and all(isinstance(x, Result) and x.status == "ok" for x in results)
    for x in results:
        assert x.environment.gpu.name and x.memory.peak_device_used_mib > 0
        assert x.memory.breakdown and x.memory.breakdown.weights.mib > 0
