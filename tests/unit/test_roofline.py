import pytest

from bench.roofline import padded_decode_bytes, paged_decode_bytes, roofline
from bench.suite import make_scenario
from bench.workload import Request


def reqs():
    return [Request(0, (1,) * 3, 4), Request(1, (1,) * 5, 2)]


def test_padded_bytes_by_hand():
    # one batch: width 5, 4 new tokens -> 3 decode steps reading 2 rows x (6, 7, 8) slots
    total, steps = padded_decode_bytes(reqs(), 2, weights=100, bpt=10)
    assert steps == 3 and total == 3 * 100 + 2 * (6 + 7 + 8) * 10


def test_static_cache_reads_its_whole_length():
    total, _ = padded_decode_bytes(reqs(), 2, weights=100, bpt=10, cache_len=64)
    assert total == 3 * 100 + 3 * 2 * 64 * 10


def test_paged_lower_bound_by_hand():
    # live tokens read: request 0 at steps holding 4, 5, 6 tokens; request 1 at 6 -> 21 tokens
    total, steps = paged_decode_bytes(reqs(), weights=100, bpt=10, max_running=256)
    assert steps == 3 and total == 21 * 10 + 3 * 100


def test_fraction_of_roofline():
    vllm = make_scenario(name="v", stack="vllm", workload="w")
    read, steps, how = vllm.roofline_layout(reqs(), weights=100, bpt=10, cache_len=64, peak_running=None)
    r = roofline(read, steps, how, bandwidth_gbps=1e-6, elapsed_s=1.0)
    assert r.floor_s == pytest.approx(510 / 1000) and r.fraction_of_roofline == pytest.approx(0.51)
    hf = make_scenario(name="h", stack="hf", mode="padded", batch_size=2, workload="w")
    read, steps, how = hf.roofline_layout(reqs(), weights=1, bpt=1, cache_len=64, peak_running=None)
    assert (read, steps) == padded_decode_bytes(reqs(), 2, 1, 1) and "padded" in how
    assert roofline(read, steps, how, bandwidth_gbps=None, elapsed_s=1.0).fraction_of_roofline is None
