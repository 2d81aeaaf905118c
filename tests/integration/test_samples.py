"""Parallel sampling (n outputs per prompt) on the real engines (CPU): every output checked to its length;
HF's generate() holds each prompt's KV once per sample, vLLM shares the prompt's blocks through its
prefix cache."""

import pytest

from bench.results import load_result
from tests.conftest import has, run_cli, run_script
from tests.integration.sharing import run_stacks, sharing_table

pytestmark = pytest.mark.integration

SUITE = """
name: samples
model: synthetic:tiny-llama
workloads:
  n3:
    requests: 4
    seed: 9
    samples_per_prompt: 3
    temperature: 0.8
    prompt_len: {dist: uniform, min: 260, max: 300}
    output_len: {dist: uniform, min: 3, max: 9}
  n1:
    requests: 12
    seed: 9
    temperature: 0.8
    prompt_len: {dist: uniform, min: 260, max: 300}
    output_len: {dist: uniform, min: 3, max: 9}
  alpaca-n2:
    requests: 4
    seed: 9
    samples_per_prompt: 2
    temperature: 0.8
    prompt_len: {dist: uniform, min: 15, max: 24}
    output_len: 4
scenarios:
  - {name: hf-b2, stack: hf, mode: padded, batch_size: 2, workload: n3, warmup_requests: 1}
  - {name: hf-alpaca, stack: hf, mode: padded, batch_size: 4, workload: alpaca-n2, warmup_requests: 1}
  - {name: hf-static-alpaca, stack: hf, mode: static-cache, batch_size: 4, workload: alpaca-n2, warmup_requests: 1,
     max_model_len: 64}
  - {name: vllm-alpaca, stack: vllm, workload: alpaca-n2, warmup_requests: 0, enforce_eager: true,
     kv_cache_space_gib: 1, max_model_len: 320, enable_prefix_caching: true, kv_sharing_probe: true}
  - {name: vllm, stack: vllm, workload: n3, warmup_requests: 0, enforce_eager: true, kv_cache_space_gib: 1,
     max_model_len: 320, enable_prefix_caching: true, kv_sharing_probe: true}
  - {name: vllm-n1, stack: vllm, workload: n1, warmup_requests: 0, enforce_eager: true, kv_cache_space_gib: 1,
     max_model_len: 320, enable_prefix_caching: true, kv_sharing_probe: true}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_stacks(tmp_path_factory.mktemp("samples"), SUITE)


def test_every_sample_is_checked_and_counted(runs):
    hf = load_result(runs / "hf" / "hf-hf-b2-r0.json")
    assert hf.check.passed and hf.check.expected_requests == 12 and hf.metrics.requests == 4
    assert hf.metrics.output_tokens == hf.workload.output_tokens == hf.check.expected_output_tokens
    assert hf.workload.spec.samples_per_prompt == 3


def test_hf_holds_each_prompt_once_per_sample(runs):
    hf = load_result(runs / "hf" / "hf-hf-b2-r0.json")
    prompts = hf.workload.prompt_tokens
    assert hf.kv.prompt_tokens_total == 3 * prompts  # generate() expands every prompt n times: nothing shared
    assert hf.kv.accounted and hf.kv.batch_size == 2


def test_hf_static_cache_runs_samples_too_and_holds_each_prompt_once_per_sample(runs):
    """So HF's best on a sharing workload is taken over the modes that can run it, not padded batches alone."""
    s = load_result(runs / "hf" / "hf-hf-static-alpaca-r0.json")
    assert s.status == "ok" and s.check.passed and s.mode == "static-cache"
    assert s.metrics.output_tokens == s.workload.output_tokens
    assert s.kv.prompt_tokens_total == 2 * s.workload.prompt_tokens and s.kv.accounted
    assert s.kv.reserved_bytes_peak == 4 * 2 * 64 * s.kv.bytes_per_token  # every row: max_model_len slots


@pytest.mark.skipif(not has("vllm"), reason="vLLM is not installed")
def test_vllm_returns_every_sample_and_shares_the_prompt(runs):
    v = load_result(runs / "vllm" / "vllm-vllm-r0.json")
    assert v.check.passed and v.check.returned_requests == 12
    assert v.metrics.output_tokens == v.workload.output_tokens
    # The n requests of a prompt find its full blocks in the prefix cache.
    assert v.kv.prefix_cache_hits >= 4 * (3 - 1) * (260 // v.kv.block_size) * v.kv.block_size > 0


@pytest.mark.skipif(not has("vllm"), reason="vLLM is not installed")
def test_vllm_saves_memory_with_several_samples_and_none_with_one(runs):
    """The engine probe: the n samples of a prompt hold its blocks once; prompts of their own share none."""
    n3 = load_result(runs / "vllm" / "vllm-vllm-r0.json").kv.sharing
    n1 = load_result(runs / "vllm" / "vllm-vllm-n1-r0.json").kv.sharing
    assert n3.error is None and n1.error is None and n3.readings > 0 and n3.busy_s > 0
    assert n3.saved > n1.saved == 0.0
    assert n3.logical_blocks_mean > n3.physical_blocks_mean > 0
    assert n3.saved == pytest.approx(1 - n3.physical_blocks_mean / n3.logical_blocks_mean)


@pytest.mark.skipif(not has("vllm"), reason="vLLM is not installed")
def test_the_sharing_figures_are_recomputed_from_the_raw_readings_the_result_keeps(runs):
    """Every reading the engine took is in the result, and the figures follow from them alone."""
    n3 = load_result(runs / "vllm" / "vllm-vllm-r0.json").kv.sharing
    assert n3.trace is not None and len(n3.trace.t_s) == n3.readings
    out = run_script("sharing_recompute", runs / "vllm")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("\nok ") + out.stdout.startswith("ok ") >= 2 and "0 differ" in out.stdout


def test_the_report_says_what_sharing_saved(runs, tmp_path):
    from bench.report.tables import pct

    table, needed = sharing_table(
        runs, tmp_path, "3 sample(s) per prompt, a shared prefix of 0 tokens", "hf-hf-b2-r0.json"
    )
    hf = next(line for line in table.splitlines() if line.startswith("| hf padded"))
    assert f"| {needed:,} | 0.0 % | 0.0 % |" in hf  # generate() copies every prompt: nothing saved
    if has("vllm"):
        v = load_result(runs / "vllm" / "vllm-vllm-r0.json").kv
        line = next(x for x in table.splitlines() if x.startswith("| vllm continuous"))
        assert f"| {needed:,} | {pct(v.sharing.saved)} | {pct(v.sharing.saved_at_peak)} | " in line
        assert pct(v.prefix_hit_rate) in line
    assert "the vLLM paper's figures (OPT-13B" in table
    # HF's modes that did not run, each with why: its own refusal, or the suite's choice.
    assert "hf paged: cannot run this workload (HF's paged mode generates one output per prompt" in table
    assert "hf static-cache: not among these results" in table and "hf padded:" not in table


def test_the_report_sets_the_papers_figure_beside_this_runs(runs, tmp_path):
    """An Alpaca-shaped workload (mean prompt within a quarter of the dataset's 19.31 tokens) gets a row per
    stack in the paper's table, with this run's figure and the paper's range for parallel sampling."""
    from bench.report.tables import pct

    r = run_cli("collect", runs, "--out", tmp_path, "--no-plots")
    assert r.returncode == 0, r.stderr
    table = (tmp_path / "report.md").read_text().split("### Memory saved by sharing, beside the vLLM paper's")[1]
    table = table.split("###")[0].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| Alpaca-shaped")]
    hf = next(x for x in rows if "| hf-alpaca |" in x)
    assert "| parallel sampling | 2 |" in hf and "| 0.0 % | 0.0 % | 6.1 % – 9.8 % |" in hf
    static = next(x for x in rows if "| hf-static-alpaca |" in x)
    assert "| hf static-cache b=4 |" in static and "| 0.0 % | 0.0 % | 6.1 % – 9.8 % |" in static
    if has("vllm"):
        probe = load_result(runs / "vllm" / "vllm-vllm-alpaca-r0.json").kv.sharing
        v = next(x for x in rows if "| vllm-alpaca |" in x)
        assert f"| {pct(probe.saved)} | {pct(probe.saved_at_peak)} | 6.1 % – 9.8 % |" in v
    assert len(rows) == 2 + has("vllm")  # the n3 workload (prompts of 260-300 tokens) is neither shape
