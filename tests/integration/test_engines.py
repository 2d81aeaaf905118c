"""Real transformers and real vLLM on a tiny synthetic model (CPU), through the CLI."""

import pytest

from bench.kv import kv_bytes_per_token
from bench.models.presets import PRESETS
from tests.conftest import has

pytestmark = pytest.mark.integration


def test_hf_run_exits_1_for_the_failed_scenario_and_finishes_the_rest(runs):
    assert runs["hf"].returncode == 1, runs["hf"].stderr[-3000:]
    r = runs["results"]
    assert r["too-slow"].status == "failed" and "timeout" in r["too-slow"].error
    assert r["too-slow"].metrics is None
    assert all(r[n].status == "ok" for n in ("sequential", "padded-b4", "static-b4"))


def test_exact_token_counts(runs):
    for name in ("sequential", "padded-b4", "static-b4", "paged", "vllm"):
        r = runs["results"][name]
        assert r.check.passed and r.check.returned_requests == 10
        assert r.metrics.output_tokens == r.workload.output_tokens == r.check.expected_output_tokens
        assert r.metrics.output_tokens_per_s == pytest.approx(r.metrics.output_tokens / r.metrics.elapsed_s)


def test_same_workload_hash_across_stacks(runs):
    hashes = {r.workload.hash for r in runs["results"].values()}
    assert len(hashes) == 1


def test_hf_padded_kv_utilisation_equals_the_workload_arithmetic(runs):
    r = runs["results"]["padded-b4"]
    # Rebuild the lengths independently of the runner: the workload is deterministic from its spec.
    from bench.suite import load_suite
    from bench.workload import build_workload

    suite = load_suite(str(runs["out"].parent / "it.yaml"))
    w = build_workload("mixed", suite.workloads["mixed"], range(256))
    assert w.hash == r.workload.hash
    lengths = [(q.prompt_len, q.output_len) for q in w.requests]
    reserved = live = 0
    for i in range(0, len(lengths), 4):
        batch = lengths[i : i + 4]
        width, new = max(p for p, _ in batch), max(o for _, o in batch)
        reserved += len(batch) * (width + new - 1)
        live += sum(p + o - 1 for p, o in batch)
    kv = r.kv
    assert kv.reserved_tokens_total == reserved and kv.live_tokens_total == live
    assert kv.utilization == pytest.approx(live / reserved) and kv.utilization < 1
    assert kv.accounted is True
    bpt = kv_bytes_per_token(PRESETS["tiny-llama"].config, "float32")
    assert kv.bytes_per_token == bpt and kv.bytes_per_token_read == bpt  # read matches arithmetic


def test_static_cache_reserves_max_model_len(runs):
    kv = runs["results"]["static-b4"].kv
    assert kv.reserved_tokens_total == 10 * 128  # every row holds the whole max_model_len
    assert kv.unreached_tokens_total > 0 and kv.accounted is True
    assert kv.utilization < runs["results"]["padded-b4"].kv.utilization


def test_sequential_holds_only_live_tokens(runs):
    kv = runs["results"]["sequential"].kv
    assert kv.utilization == 1.0  # a DynamicCache of one request grows exactly to its tokens


def test_memory_and_environment_recorded(runs):
    r = runs["results"]["padded-b4"]
    assert r.memory.peak_host_rss_mib > 50 and r.memory.timeline
    assert {p.name for p in r.memory.phases} >= {"run"}
    assert r.environment.packages["transformers"] and r.environment.device == "cpu"
    # Which attention backends torch could pick (on Hopper, cuDNN first), and the variables set for it.
    assert set(r.environment.sdpa_backends) == {"cudnn", "flash", "mem_efficient", "math"}
    assert r.environment.settings is not None
    assert r.model.dtype == "float32" and r.model.kv_bytes_per_token == 512 * 2
    # A CPU run measures no energy, and says so.
    assert r.energy.joules is None and r.energy.error == "no NVIDIA GPU: a CPU run's energy is not measured"


@pytest.mark.skipif(not has("vllm"), reason="vLLM is not installed")
def test_vllm_run(runs):
    assert runs["vllm"].returncode == 0, runs["vllm"].stderr[-3000:]
    r = runs["results"]["vllm"]
    kv = r.kv
    assert kv.pool_blocks > 0 and kv.block_size > 0 and kv.prefix_caching is False
    assert kv.pool_tokens == kv.pool_blocks * kv.block_size
    assert kv.engine_samples >= 1 and kv.peak_running >= 1 and 0 < kv.peak_usage <= 1
    assert 0 < kv.block_fill <= 1
    assert r.timing.engine_start_s > 0
    assert r.metrics.ttft_ms.count == 10 and "engine-core" in r.metrics.latency_source
    assert r.metrics.latency_ms.max <= r.metrics.elapsed_s * 1000 * 1.05
    assert (runs["out"] / "vllm" / "vllm.log").read_text().count("EngineCore") > 0  # engine output kept


def test_hf_paged_pool_is_read_from_transformers(runs):
    r = runs["results"]["paged"]
    assert r.status == "ok", r.error
    kv = r.kv
    assert kv.pool_bytes > 0 and kv.pool_blocks > 0 and kv.block_size > 0
    assert 0 < kv.block_fill <= 1 and "PagedAttentionCache" in kv.source


def test_a_scenario_on_warmed_shapes_shares_the_warm_up_and_every_result_splits_its_time(runs):
    """A second scenario on the same shapes as the first (one engine) warms up no more. Every result says
    where its wall time went."""
    first, second = runs["results"]["padded-b4"], runs["results"]["padded-b4-again"]
    assert first.timing.warmup_s > 0 and not first.timing.warmup_shared
    assert second.timing.warmup_s is None and second.timing.warmup_shared and second.timing.engine_reused
    for r in runs["results"].values():
        if r.status == "ok":
            assert r.timing.wall_s >= r.timing.timed_s == r.metrics.elapsed_s
    vllm = runs["results"].get("vllm")
    if vllm is not None:
        assert vllm.timing.engine_start_s > 0 and vllm.timing.compile_cache in (None, "cold", "warm")
        again = runs["results"]["vllm-again"]
        assert again.status == "ok" and again.timing.engine_reused, again.error
