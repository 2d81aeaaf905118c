"""Regression gate: compare a candidate results directory against a baseline, row by row.

Rows are matched on (workload hash, model, GPU name, stack, scenario); a metric regresses when it moves the
wrong way by more than the threshold. Nothing is compared across workloads or GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError
from bench.report.collect import Row, collect

# metric -> True when higher is better
METRICS = {
    "output_tokens_per_s": True,
    "requests_per_s": True,
    "latency_p50_ms": False,
    "latency_p99_ms": False,
    "peak_memory_mib": False,
}


@dataclass
class Delta:
    key: tuple
    metric: str
    base: float
    cand: float

    @property
    def change(self) -> float:
        return (self.cand - self.base) / self.base if self.base else 0.0

    def regression(self, threshold: float) -> bool:
        worse = -self.change if METRICS[self.metric] else self.change
        return worse > threshold


def parse_threshold(text: str) -> float:
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise UserError(
            f"--max-regression {text!r}: expected a percentage such as 5% or a fraction such as 0.05"
        ) from None
    if not 0 <= value < 10:
        raise UserError(f"--max-regression {text!r}: must be between 0% and 1000%")
    return value


def _rows(path: Path) -> dict[tuple, Row]:
    out = {}
    for g in collect(path).groups:
        for row in g.rows:
            gpu = (row.first.environment.get("gpu") or {}).get("name") or "CPU"
            out[(g.workload_hash, g.model, gpu, row.first.stack, row.first.scenario)] = row
    return out


def compare(baseline: Path, candidate: Path) -> tuple[list[Delta], list[tuple]]:
    base, cand = _rows(baseline), _rows(candidate)
    common = sorted(set(base) & set(cand))
    if not common:
        raise UserError(
            "no scenario of the candidate matches the baseline on workload hash, model and GPU: "
            "results of different workloads or GPUs are never compared"
        )
    deltas = [
        Delta(k, m, base[k].stat(m).mean, cand[k].stat(m).mean)
        for k in common
        for m in METRICS
        if base[k].stat(m).mean or cand[k].stat(m).mean
    ]
    unmatched = sorted(set(base) ^ set(cand))
    return deltas, unmatched
