"""`batch_size: max`: the largest padded batch whose most demanding batch of the workload completes.

Two small batches give the memory per row, which gives a first guess; from it, steps that double until a
batch fails (or fits), then bisection. Without memory figures (CPU): doubling from 1, then bisection. An
out-of-memory is a data point, not a failure (unless batch 1 does not fit).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from bench.results.sections import Capacity, Probe
from bench.workload import Request, batches


class ScenarioOOM(RuntimeError):
    """A batch ran out of device memory."""


class Device(Protocol):
    """What the search needs of a loaded model."""

    def generate(self, batch: Sequence[Request]) -> None:
        """Generate one padded batch; raise ScenarioOOM when it does not fit."""

    def reset_peak(self) -> None: ...

    def peak_bytes(self) -> int | None: ...

    def budget_bytes(self) -> int | None:
        """What the allocator may hold, or None off the GPU."""


def padded_slots(batch: Sequence[Request]) -> int:
    """Token slots a left-padded batch's cache grows to: rows x (longest prompt + longest output)."""
    return len(batch) * (max(r.prompt_len for r in batch) + max(r.output_len for r in batch))


# Memory grows with rows x (width + new tokens), prefill activations with width: the batches that lead on
# each measure are the ones probed.
_MEASURES = (
    padded_slots,
    lambda b: len(b) * max(r.prompt_len for r in b),
    lambda b: len(b) * max(r.output_len for r in b),
)


class _Search:
    def __init__(self, requests: Sequence[Request], device: Device) -> None:
        self.requests, self.device = requests, device
        self.n, self.lo, self.hi = len(requests), 0, None
        self.probes: list[Probe] = []
        self.peaks: dict[int, int] = {}

    def probe(self, size: int) -> None:
        candidates = batches(self.requests, size)
        worst = list({id(b): b for b in (max(candidates, key=m) for m in _MEASURES)}.values())
        self.device.reset_peak()
        t = time.perf_counter()
        ok, error = True, None
        for batch in worst:
            try:
                self.device.generate(batch)
            except ScenarioOOM as e:
                ok, error = False, str(e).split(":")[0]
                break
        peak = self.device.peak_bytes()
        if peak is not None and ok:
            self.peaks[size] = peak
        self.probes.append(
            Probe(
                batch_size=size,
                batches_probed=len(worst),
                fits=ok,
                seconds=time.perf_counter() - t,
                torch_peak_allocated_mib=peak / 2**20 if peak is not None else None,
                error=error,
            )
        )
        if ok:
            self.lo = max(self.lo, size)
        else:
            self.hi = size if self.hi is None else min(self.hi, size)

    def guided(self) -> None:
        """From two small probes' peaks, guess the size that fills the budget; step from there."""
        for size in sorted({min(self.n, 4), min(self.n, 16)}):
            self.probe(size)
            if self.hi is not None:
                return
        budget, (small, large) = self.device.budget_bytes(), (sorted(self.peaks) + [0, 0])[:2]
        slope = (self.peaks[large] - self.peaks[small]) / (large - small) if large > small else 0
        if self.hi is not None or self.lo >= self.n or not budget or slope <= 0:
            return
        guess = max(self.lo + 1, min(self.n, int(large + (budget * 0.95 - self.peaks[large]) / slope)))
        self.probe(guess)
        step = max(1, guess // 16)
        while self.hi is None and self.lo < self.n:  # the guess fitted: step up until a batch fails
            self.probe(min(self.n, self.lo + step))
            step *= 2
        while self.hi is not None and self.hi - step > self.lo:  # the guess failed: step down until one fits
            size = self.hi - step
            self.probe(size)
            if self.lo == size:
                break
            step *= 2

    def bound(self) -> None:
        """Doubling until a batch fails (or the workload fits in one), then bisection."""
        size = max(1, self.lo * 2)
        while self.hi is None and self.lo < self.n:
            self.probe(min(self.n, size))
            size *= 2
        while self.hi is not None and self.hi - self.lo > 1:
            self.probe((self.lo + self.hi) // 2)


def largest_batch(requests: Sequence[Request], device: Device, memory_fraction: float | None) -> Capacity:
    search = _Search(requests, device)
    search.guided()
    search.bound()
    if search.lo == 0:
        raise ScenarioOOM("out of memory even at batch size 1")
    return Capacity(
        max_batch=search.lo,
        first_failing_batch=search.hi,
        bounded_by="memory" if search.hi is not None else "workload size (every request fit in one batch)",
        memory_fraction=memory_fraction,
        probes=search.probes,
    )
