"""Tensor parallelism on the CPU. transformers' (gloo): two ranks make every generate() together, the split
model generates what the whole one does, rank 0 writes one result whose KV figures are the whole run's,
and no rank outlives its engine. vLLM's: two CPU workers, each with its own KV pool, recorded as such."""

import textwrap

import pytest

from bench.results import scan_results
from tests.conftest import has, run_cli, running

pytestmark = pytest.mark.integration

SUITE = """
name: tp
model: synthetic:tiny-llama
workloads:
  w: {requests: 12, seed: 1, prompt_len: {dist: uniform, min: 8, max: 40}, output_len: {dist: uniform, min: 4, max: 16}}
scenarios:
  - {name: tp1, stack: hf, mode: padded, batch_size: 4, workload: w}
  - {name: tp2, stack: hf, mode: padded, batch_size: 4, workload: w, tensor_parallel_size: 2}
  - {name: tp2-seq, stack: hf, mode: sequential, workload: w, tensor_parallel_size: 2, warmup_requests: 0}
"""


def ranks_left() -> list[str]:
    return running("bench.stacks.hf.tensor_parallel")


def test_two_ranks_give_one_result_with_the_whole_runs_kv_and_leave_nothing_running(tmp_path):
    suite = tmp_path / "tp.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    r = run_cli("run", "--stack", "hf", "--suite", suite, "--device", "cpu", "--out", tmp_path, "--run-id", "t")
    assert r.returncode == 0, r.stderr[-3000:]
    results = {x.scenario: x for _, x in scan_results(tmp_path / "t")}
    one, two, seq = results["tp1"], results["tp2"], results["tp2-seq"]
    assert all(x.status == "ok" and x.check.passed for x in (one, two, seq))
    assert two.metrics.output_tokens == one.metrics.output_tokens == seq.metrics.output_tokens
    assert two.config.options["tensor_parallel_size"] == 2 and two.kv.ranks == 2 and one.kv.ranks is None
    # Rank 0's cache held half the KV heads; times two ranks it is what one process held.
    assert two.kv.reserved_bytes_peak == one.kv.reserved_bytes_peak
    assert two.kv.bytes_per_token_read == one.kv.bytes_per_token_read == one.kv.bytes_per_token
    assert two.memory.weights_mib < one.memory.weights_mib  # rank 0's shard
    assert two.memory.peak_host_rss_mib > one.memory.peak_host_rss_mib  # both ranks' processes are sampled
    assert not ranks_left()


def test_the_split_model_generates_what_the_whole_one_does():
    import torch

    from bench.context import materialize
    from bench.models import parse_model
    from bench.stacks.hf import generation

    path = materialize(parse_model("synthetic:tiny-llama"))
    ids = torch.randint(3, 250, (3, 12), generator=torch.Generator().manual_seed(0))
    kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "max_new_tokens": 8, "min_new_tokens": 8}
    kwargs |= {"do_sample": False, "pad_token_id": 0}
    outputs = []
    for tp in (1, 2):
        loaded = generation.load(path, "float32", "cpu", tensor_parallel=tp)
        try:
            assert loaded.tensor_parallel == tp
            with torch.inference_mode():
                outputs.append(loaded.generate(dict(kwargs)))
        finally:
            loaded.close()
    assert torch.equal(outputs[0], outputs[1])
    assert not ranks_left()


@pytest.mark.skipif(not has("vllm"), reason="vLLM is not installed")
def test_vllm_on_two_cpu_workers_records_both_pools(tmp_path):
    suite = tmp_path / "vtp.yaml"
    suite.write_text(
        textwrap.dedent("""
        name: vtp
        model: synthetic:tiny-llama
        workloads:
          w: {requests: 16, seed: 1, prompt_len: {dist: uniform, min: 8, max: 40}, output_len: 8}
        scenarios:
          - {name: v1, stack: vllm, workload: w, enforce_eager: true, kv_cache_space_gib: 1, max_model_len: 256}
          - {name: v2, stack: vllm, workload: w, enforce_eager: true, kv_cache_space_gib: 1, max_model_len: 256,
             tensor_parallel_size: 2}
    """)
    )
    r = run_cli("run", "--stack", "vllm", "--suite", suite, "--out", tmp_path, "--run-id", "v")
    assert r.returncode == 0, r.stderr[-3000:]
    results = {x.scenario: x for _, x in scan_results(tmp_path / "v")}
    one, two = results["v1"], results["v2"]
    assert one.status == two.status == "ok" and two.metrics.output_tokens == one.metrics.output_tokens
    assert two.kv.ranks == 2 and one.kv.ranks is None
    # Each CPU worker is given the same space for its half of every block: twice the blocks, twice the bytes.
    assert two.kv.pool_blocks == pytest.approx(2 * one.kv.pool_blocks, rel=0.01)
    assert two.kv.reserved_bytes_peak == pytest.approx(2 * one.kv.reserved_bytes_peak, rel=0.01)
