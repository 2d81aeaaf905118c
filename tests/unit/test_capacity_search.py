"""The batch-size search of `batch_size: max`, with out-of-memory simulated by a token budget."""

from types import SimpleNamespace

import pytest

from bench.config import Scenario, Workload
from bench.runners.base import LoadedModel, RunOutput
from bench.runners.hf import HfRunner, ScenarioOOM
from bench.workload import build_workload


class BudgetRunner(HfRunner):
    """HfRunner whose generate() 'runs out of memory' past a budget of rows x (width + new tokens)."""

    def __init__(self, budget: int, requests, memory_figures: bool = False):
        model = LoadedModel(path=".", spec="t", dtype="float32", max_model_len=512, device="cpu")
        super().__init__(model, Scenario(name="m", stack="hf", mode="padded", batch_size="max", workload="w"))
        self.budget, self.calls, self.peak = budget, [], 0
        self.memory_figures = memory_figures  # like a GPU: the search may guess from measured peaks
        self.device, self.torch = SimpleNamespace(type="cpu"), None

    def _reset_peak(self):
        self.peak = 0

    def _peak_bytes(self):
        return self.peak if self.memory_figures else None

    def _budget_bytes(self):
        return self.budget if self.memory_figures else None

    def _generate(self, batch, t0):
        cost = len(batch) * (max(r.prompt_len for r in batch) + max(r.output_len for r in batch))
        self.calls.append(len(batch))
        self.peak = max(self.peak, min(cost, self.budget))
        if cost > self.budget:
            raise ScenarioOOM(f"out of memory at batch size {len(batch)}: simulated")
        return [r.output_len for r in batch], 0.0, [], 0.0, {}

    def _run_batches(self, requests, size, warmup):
        for i in range(0, len(requests), size):
            self._generate(requests[i : i + size], 0.0)
        return RunOutput(elapsed_s=1.0, returned_tokens=[], timings=[], latency_source="t", kv={})


def workload(n=100):
    spec = Workload.model_validate(
        {"requests": n, "seed": 1, "prompt_len": {"dist": "uniform", "min": 10, "max": 50}, "output_len": 10}
    )
    return build_workload("w", spec, range(256)).requests


def largest_fitting(requests, budget):
    """Brute force: the largest size whose every batch stays within the budget."""
    best = 0
    for size in range(1, len(requests) + 1):
        batches = [requests[i : i + size] for i in range(0, len(requests), size)]
        if all(len(b) * (max(r.prompt_len for r in b) + max(r.output_len for r in b)) <= budget for b in batches):
            best = size
    return best


@pytest.mark.parametrize("memory_figures", [False, True], ids=["doubling", "guided"])
@pytest.mark.parametrize("budget", [70, 500, 1234, 3000])
def test_search_finds_the_largest_batch(budget, memory_figures):
    requests = workload()
    runner = BudgetRunner(budget, requests, memory_figures)
    out = runner._run_largest(requests)
    cap = out.kv["capacity"]
    assert cap["max_batch"] == largest_fitting(requests, budget)
    assert any(not p["fits"] for p in cap["probes"])  # the bound was found by an out-of-memory


def test_guided_search_probes_fewer_large_batches():
    """Large batches cost the most to probe: the guess from two small ones saves most of them."""
    requests = workload(400)
    large = {}
    for memory_figures in (False, True):
        runner = BudgetRunner(20_000, requests, memory_figures)
        cap = runner._run_largest(requests).kv["capacity"]
        assert cap["max_batch"] == largest_fitting(requests, 20_000)
        large[memory_figures] = sum(p["batch_size"] >= cap["max_batch"] // 2 for p in cap["probes"])
    assert large[True] < large[False]


def test_unbounded_search_stops_at_the_workload():
    requests = workload(20)
    out = BudgetRunner(10**9, requests)._run_largest(requests)
    assert out.kv["capacity"]["max_batch"] == 20 and out.kv["capacity"]["first_failing_batch"] is None


def test_nothing_fits():
    requests = workload(8)
    with pytest.raises(ScenarioOOM, match="batch size 1"):
        BudgetRunner(5, requests)._run_largest(requests)
