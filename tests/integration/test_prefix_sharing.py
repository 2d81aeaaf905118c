"""A shared prompt prefix on the real vLLM engine (CPU): with prefix caching on, the engine finds the
prefix's tokens in its cache; with it off, it finds none. The figures are counted by the engine itself."""

import textwrap

import pytest

from bench.results import load_result
from tests.conftest import has, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not has("vllm"), reason="vLLM is not installed")]

SUITE = """
name: prefix
model: synthetic:tiny-llama
workloads:
  shared:
    requests: 8
    seed: 5
    shared_prefix_len: 256
    prompt_len: {dist: uniform, min: 5, max: 40}
    output_len: 6
scenarios:
  - {name: cached, stack: vllm, workload: shared, warmup_requests: 0, enforce_eager: true, kv_cache_space_gib: 1,
     max_model_len: 320, enable_prefix_caching: true, repeats: 2}
  - {name: uncached, stack: vllm, workload: shared, warmup_requests: 0, enforce_eager: true, kv_cache_space_gib: 1,
     max_model_len: 320, enable_prefix_caching: false}
"""


def test_prefix_cache_hits_with_caching_on_and_none_with_it_off(tmp_path):
    suite = tmp_path / "prefix.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    r = run_cli("run", "--stack", "vllm", "--suite", suite, "--out", tmp_path, "--run-id", "p")
    assert r.returncode == 0, r.stderr[-3000:]
    cached, uncached = (load_result(tmp_path / "p" / f"vllm-{n}-r0.json").kv for n in ("cached", "uncached"))
    assert cached.prefix_caching and not uncached.prefix_caching
    block = cached.block_size
    shared_blocks = 256 // block
    # Every request but the first finds the prefix's full blocks cached (at least; its own tokens never are).
    assert cached.prefix_cache_hits >= (8 - 1) * shared_blocks * block > 0
    assert cached.prefix_cache_hits <= cached.prefix_cache_queries
    assert not uncached.prefix_cache_hits
    again = load_result(tmp_path / "p" / "vllm-cached-r1.json")  # the same engine: its cache emptied first
    assert again.timing.engine_reused and again.kv.prefix_cache_hits == cached.prefix_cache_hits
    report = run_cli("collect", tmp_path / "p", "--out", tmp_path / "report", "--no-plots")
    text = (tmp_path / "report" / "report.md").read_text()
    assert report.returncode == 0 and "(the first 256 shared by all)" in text
    assert f"found {cached.prefix_cache_hits:,.0f} of the {cached.prefix_cache_queries:,.0f} prompt tokens" in text
