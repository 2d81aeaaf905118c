"""One real run of both engines (CPU) per test session, shared by the integration tests."""

import textwrap

import pytest

from bench.results import Result, scan_results
from tests.conftest import has, run_cli

SUITE = """
name: it
model: synthetic:tiny-llama
workloads:
  mixed:
    requests: 10
    seed: 3
    prompt_len: {dist: uniform, min: 5, max: 60}
    output_len: {dist: uniform, min: 2, max: 30}
    temperature: 0.8
scenarios:
  - {name: sequential, stack: hf, mode: sequential, workload: mixed, warmup_requests: 1}
  - {name: too-slow, stack: hf, mode: padded, batch_size: 2, workload: mixed, timeout_s: 0.001}
  - {name: padded-b4, stack: hf, mode: padded, batch_size: 4, workload: mixed, warmup_requests: 1}
  # The same shapes again: its warm-up is the one padded-b4 did.
  - {name: padded-b4-again, stack: hf, mode: padded, batch_size: 4, workload: mixed, warmup_requests: 1}
  - {name: static-b4, stack: hf, mode: static-cache, batch_size: 4, workload: mixed, max_model_len: 128}
  - {name: paged, stack: hf, mode: paged, workload: mixed, warmup_requests: 0}
  - {name: vllm, stack: vllm, workload: mixed, warmup_requests: 1, enforce_eager: true, kv_cache_space_gib: 1,
     max_model_len: 128}
  # The same engine settings: it runs on vllm's engine, a second run on a loaded engine.
  - {name: vllm-again, stack: vllm, workload: mixed, warmup_requests: 1, enforce_eager: true, kv_cache_space_gib: 1,
     max_model_len: 128}
"""


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("it")
    suite = root / "it.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    out = root / "results"
    hf = run_cli("run", "--stack", "hf", "--suite", suite, "--out", out, "--run-id", "hf")
    vllm = (
        run_cli("run", "--stack", "vllm", "--suite", suite, "--out", out, "--run-id", "vllm") if has("vllm") else None
    )
    results = {}
    for path, r in scan_results(out):
        assert isinstance(r, Result), f"{path}: {r}"
        results[r.scenario] = r
    return {"hf": hf, "vllm": vllm, "results": results, "out": out}
