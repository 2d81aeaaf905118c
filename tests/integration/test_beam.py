"""Beam search on the real engines (CPU): every beam comes back, each checked to its length; HF's
generate() holds a copy of the prompt's KV per beam, vLLM's beam search finds the beams' common prefix in
its prefix cache (when it is on)."""

import pytest

from bench.results import load_result
from tests.conftest import has, run_cli
from tests.integration.sharing import run_stacks, sharing_table

pytestmark = pytest.mark.integration

SUITE = """
name: beams
model: synthetic:tiny-llama
workloads:
  b3:
    requests: 4
    seed: 9
    beam_width: 3
    prompt_len: {dist: uniform, min: 260, max: 300}
    output_len: 5
scenarios:
  - {name: hf-b2, stack: hf, mode: padded, batch_size: 2, workload: b3, warmup_requests: 1}
  - {name: vllm, stack: vllm, workload: b3, warmup_requests: 0, enforce_eager: true, kv_cache_space_gib: 1,
     max_model_len: 320, enable_prefix_caching: true, kv_sharing_probe: true}
  - {name: vllm-uncached, stack: vllm, workload: b3, warmup_requests: 0, enforce_eager: true,
     kv_cache_space_gib: 1, max_model_len: 320, enable_prefix_caching: false, kv_sharing_probe: true}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_stacks(tmp_path_factory.mktemp("beams"), SUITE)


def test_every_beam_comes_back_checked_and_distinct(runs):
    results = [runs / "hf" / "hf-hf-b2-r0.json"]
    if has("vllm"):
        results += [runs / "vllm" / "vllm-vllm-r0.json", runs / "vllm" / "vllm-vllm-uncached-r0.json"]
    for path in results:
        r = load_result(path)
        assert r.check.passed and r.check.expected_requests == 12 and r.metrics.requests == 4, path.name
        assert r.metrics.output_tokens == r.check.returned_output_tokens == 12 * 5
        assert r.check.distinct_outputs == 12, path.name  # a beam search keeps distinct hypotheses


def test_hf_holds_the_prompt_once_per_beam(runs):
    hf = load_result(runs / "hf" / "hf-hf-b2-r0.json")
    assert hf.kv.prompt_tokens_total == 3 * hf.workload.prompt_tokens  # expanded to num_beams rows


@pytest.mark.skipif(not has("vllm"), reason="vLLM is not installed")
def test_vllm_beams_find_their_prefix_only_with_the_prefix_cache_on(runs):
    cached = load_result(runs / "vllm" / "vllm-vllm-r0.json").kv
    uncached = load_result(runs / "vllm" / "vllm-vllm-uncached-r0.json").kv
    # Every step after the first submits each beam's whole sequence: its prompt's full blocks are found.
    assert cached.prefix_cache_hits >= 4 * (5 - 1) * (260 // cached.block_size) * cached.block_size > 0
    assert not uncached.prefix_cache_hits


def test_the_report_has_a_sharing_table_for_beams(runs, tmp_path):
    from bench.report.tables import pct

    table, needed = sharing_table(runs, tmp_path, "beam width 3, a shared prefix of 0 tokens", "hf-hf-b2-r0.json")
    hf = next(line for line in table.splitlines() if line.startswith("| hf padded"))
    assert f"| {needed:,} | 0.0 % | 0.0 % |" in hf  # every beam its own copy of the prompt
    if has("vllm"):
        cached = load_result(runs / "vllm" / "vllm-vllm-r0.json").kv.sharing
        uncached = load_result(runs / "vllm" / "vllm-vllm-uncached-r0.json").kv.sharing
        # Read in the engine: the beams of a step hold their common prompt blocks once, with the prefix
        # cache on; without it every beam computes and holds its own.
        assert cached.error is None and cached.saved > 0 and cached.saved_at_peak > 0
        assert uncached.error is None and uncached.saved == 0
        line = next(x for x in table.splitlines() if x.startswith("| vllm continuous") and "| vllm |" in x)
        assert f"| {needed:,} | {pct(cached.saved)} | {pct(cached.saved_at_peak)} |" in line


def test_beam_search_is_refused_where_it_cannot_run(tmp_path):
    bad = {
        "sampled": "beam_width: 3, temperature: 0.7",
        "lengths vary": "beam_width: 3, output_len: {dist: uniform, min: 2, max: 6}",
        "with samples": "beam_width: 2, samples_per_prompt: 2, temperature: 0.5",
    }
    for why, knobs in bad.items():
        suite = tmp_path / "bad.yaml"
        knobs = knobs if "output_len" in knobs else knobs + ", output_len: 4"
        suite.write_text(
            "name: bad\nmodel: synthetic:tiny-llama\n"
            f"workloads:\n  w: {{requests: 2, prompt_len: 8, {knobs}}}\n"
            "scenarios:\n  - {name: a, stack: hf, mode: padded, batch_size: 2, workload: w}\n"
        )
        r = run_cli("run", "--stack", "hf", "--suite", suite, "--out", tmp_path / "out")
        assert r.returncode == 2 and "workloads.w: beam_width > 1" in r.stderr and "Traceback" not in r.stderr, why
