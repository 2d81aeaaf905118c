import pytest

from bench.config import Workload
from bench.metrics import check_output, compute_metrics, percentile
from bench.stacks.base import RequestTiming, RunOutput
from bench.workload import build_workload


def wl():
    return build_workload("w", Workload.model_validate({"requests": 4, "prompt_len": 3, "output_len": 5}), range(10))


def test_percentile_matches_linear_interpolation():
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile([7.0], 99) == 7.0


def test_figures_from_returned_tokens():
    w = wl()
    out = RunOutput(
        elapsed_s=2.0,
        returned_tokens=[5, 5, 5, 5],
        timings=[RequestTiming(finish_s=1.0 + i * 0.25, first_token_s=0.5, last_token_s=0.9) for i in range(4)],
        latency_source="test",
    )
    check = check_output(w, out)
    assert check.passed and check.returned_output_tokens == 20
    m = compute_metrics(w, out)
    assert m.output_tokens_per_s == 10.0 and m.requests_per_s == 2.0 and m.prompt_tokens == 12
    assert m.latency_ms.p50 == pytest.approx(1375.0)
    assert m.tpot_ms.p50 == pytest.approx(100.0)  # (0.9 - 0.5) s / 4 tokens


def test_short_output_fails_the_check():
    w = wl()
    out = RunOutput(elapsed_s=1.0, returned_tokens=[5, 4, 5, 5], timings=[RequestTiming(1.0)] * 4, latency_source="t")
    check = check_output(w, out)
    assert not check.passed and check.mismatched_requests == [1] and check.returned_output_tokens == 19


def test_missing_requests_fail_the_check():
    w = wl()
    out = RunOutput(elapsed_s=1.0, returned_tokens=[5, 5], timings=[RequestTiming(1.0)] * 2, latency_source="t")
    assert not check_output(w, out).passed
