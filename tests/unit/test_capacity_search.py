"""The batch-size search of `batch_size: max`, with out-of-memory simulated by a token budget."""

import pytest

from bench.config import Workload
from bench.stacks.hf.capacity import ScenarioOOM, largest_batch
from bench.workload import build_workload


class BudgetDevice:
    """A device whose generate() 'runs out of memory' past a budget of rows x (width + new tokens)."""

    def __init__(self, budget: int, memory_figures: bool = False):
        self.budget, self.calls, self.peak = budget, [], 0
        self.memory_figures = memory_figures  # like a GPU: the search may guess from measured peaks

    def reset_peak(self):
        self.peak = 0

    def peak_bytes(self):
        return self.peak if self.memory_figures else None

    def budget_bytes(self):
        return self.budget if self.memory_figures else None

    def generate(self, batch):
        cost = len(batch) * (max(r.prompt_len for r in batch) + max(r.output_len for r in batch))
        self.calls.append(len(batch))
        self.peak = max(self.peak, min(cost, self.budget))
        if cost > self.budget:
            raise ScenarioOOM(f"out of memory at batch size {len(batch)}: simulated")


def search(requests, budget, memory_figures=False):
    return largest_batch(requests, BudgetDevice(budget, memory_figures), memory_fraction=None)


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
    cap = search(requests, budget, memory_figures)
    assert cap.max_batch == largest_fitting(requests, budget)
    assert any(not p.fits for p in cap.probes)  # the bound was found by an out-of-memory


def test_guided_search_probes_fewer_large_batches():
    """Large batches cost the most to probe: the guess from two small ones saves most of them."""
    requests = workload(400)
    large = {}
    for memory_figures in (False, True):
        cap = search(requests, 20_000, memory_figures)
        assert cap.max_batch == largest_fitting(requests, 20_000)
        large[memory_figures] = sum(p.batch_size >= cap.max_batch // 2 for p in cap.probes)
    assert large[True] < large[False]


def test_unbounded_search_stops_at_the_workload():
    requests = workload(20)
    cap = search(requests, 10**9)
    assert cap.max_batch == 20 and cap.first_failing_batch is None


def test_nothing_fits():
    requests = workload(8)
    with pytest.raises(ScenarioOOM, match="batch size 1"):
        search(requests, 5)
