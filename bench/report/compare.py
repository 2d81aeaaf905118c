"""Regression gate: compare a candidate results directory against a baseline, row by row.

Rows are matched on (workload hash, model, GPU name, stack, scenario); a metric regresses when it moves the
wrong way by more than the threshold, beyond the noise of the repeats, on runs long enough to trust.
Nothing is compared across workloads or GPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError
from bench.report.collect import Collection, Row, Stat
from bench.report.gather import collect

# metric -> True when higher is better
METRICS = {
    "output_tokens_per_s": True,
    "requests_per_s": True,
    "latency_p50_ms": False,
    "latency_p99_ms": False,
    "peak_memory_mib": False,
}
# The same for each load of a `pagedbench serve` result (its figures are single values per load).
SERVING_METRICS = {
    "completed_share": True,
    "achieved_rps": True,
    "output_tokens_per_s": True,
    "goodput_rps": True,
    "ttft_p99_ms": False,
    "tpot_p99_ms": False,
}


@dataclass
class Delta:
    """One metric of one (workload, model, GPU, stack, scenario) row, baseline against candidate. Repeats on
    either side (`--repeats`, or several runs of the scenario in one directory) are compared as a
    distribution: the mean, with the 95 % confidence interval of the change."""

    key: tuple
    metric: str
    base: Stat
    cand: Stat
    shortest_s: float  # the shortest timed run on either side

    @property
    def change(self) -> float:
        return (self.cand.mean - self.base.mean) / self.base.mean if self.base.mean else 0.0

    @property
    def ci95(self) -> float | None:
        """Half-width of the change's 95 % interval, relative to the baseline; None when neither side repeats."""
        widths = [s.ci95 for s in (self.base, self.cand) if s.ci95 is not None]
        if not widths or not self.base.mean:
            return None
        return math.sqrt(sum(w * w for w in widths)) / abs(self.base.mean)

    def verdict(self, threshold: float, min_run_s: float) -> str:
        """ "ok"; "regression" (worse beyond the threshold, beyond the noise of the repeats); "inconclusive"
        (worse beyond it, but within that noise); "too short" (worse beyond it on a run too short to trust)."""
        higher_is_better = SERVING_METRICS if self.key[0] == "serving" else METRICS
        worse = -self.change if higher_is_better[self.metric] else self.change
        if worse <= threshold:
            return "ok"
        if self.shortest_s < min_run_s:
            return "too short"
        if self.ci95 is not None and worse - self.ci95 <= threshold:
            return "inconclusive"
        return "regression"


def parse_threshold(text: str) -> float:
    t = text.strip()
    if not t.endswith("%"):
        raise UserError(
            f"--max-regression {text!r}: expected a percentage such as 5% (a bare number could mean 5 % or 500 %)"
        )
    try:
        value = float(t[:-1]) / 100
    except ValueError:
        raise UserError(f"--max-regression {text!r}: expected a percentage such as 5%") from None
    if not 0 <= value < 10:  # also refuses nan
        raise UserError(f"--max-regression {text!r}: must be between 0% and 1000%")
    return value


def _rows(c: Collection) -> dict[tuple, Row]:
    out = {}
    for g in c.groups:
        for row in g.rows:
            gpu = row.first.environment.gpu.name if row.first.environment.gpu else "CPU"
            out[(g.workload_hash, g.model, gpu, row.first.stack, row.first.scenario)] = row
    return out


def _serving_loads(c: Collection) -> dict[tuple, dict]:
    """Each load of each serving result: its figures by SERVING_METRICS name, and its duration."""
    out = {}
    for data in c.serving:
        gpu = ((data.get("environment") or {}).get("gpu") or {}).get("name") or "CPU"
        for load in data["loads"]:
            figures = {
                "completed_share": load["completed"] / load["requests"] if load["requests"] else None,
                "achieved_rps": load["achieved_rps"],
                "output_tokens_per_s": load["output_tokens_per_s"],
                "goodput_rps": load.get("goodput_rps"),
                "ttft_p99_ms": (load.get("ttft_ms") or {}).get("p99"),
                "tpot_p99_ms": (load.get("tpot_ms") or {}).get("p99"),
            }
            key = ("serving", data.get("model"), gpu, data["stack"], f"{data['scenario']} @ {load['load']}")
            out[key] = figures | {"duration_s": load["duration_s"]}
    return out


def _serving_deltas(baseline: Collection, candidate: Collection) -> tuple[list[Delta], set, set]:
    base, cand = _serving_loads(baseline), _serving_loads(candidate)
    deltas = []
    for k in sorted(set(base) & set(cand)):
        shortest = min(base[k]["duration_s"], cand[k]["duration_s"])
        for m in SERVING_METRICS:
            b, c = base[k][m], cand[k][m]
            if b is not None and c is not None and (b or c):
                deltas.append(Delta(k, m, Stat.of([b]), Stat.of([c]), shortest))
    return deltas, set(base), set(cand)


def compare(baseline: Path, candidate: Path) -> tuple[list[Delta], list[tuple]]:
    collected = collect(baseline), collect(candidate)  # each directory read once
    base, cand = _rows(collected[0]), _rows(collected[1])
    common = sorted(set(base) & set(cand))
    served, served_base, served_cand = _serving_deltas(*collected)
    if not common and not served:
        raise UserError(
            "no scenario of the candidate matches the baseline on workload hash, model and GPU: "
            "results of different workloads or GPUs are never compared"
        )
    deltas = []
    for k in common:
        shortest = min(r.metrics.elapsed_s for r in base[k].results + cand[k].results)
        for m in METRICS:
            b, c = base[k].stat(m), cand[k].stat(m)
            if b.mean or c.mean:
                deltas.append(Delta(k, m, b, c, shortest))
    unmatched = sorted(set(base) ^ set(cand)) + sorted(served_base ^ served_cand)
    return deltas + served, unmatched


FLAGS = {"ok": "", "regression": "  REGRESSION", "inconclusive": "  within noise", "too short": "  too short"}


def gate(deltas: list[Delta], threshold: float, min_run_s: float) -> tuple[list[str], bool]:
    """The table of every comparison and a last line whose PASS/FAIL is the gate's verdict."""
    verdicts = [d.verdict(threshold, min_run_s) for d in deltas]

    def value(stat: Stat) -> str:
        return f"{stat.mean:,.2f}" + (f" (n={stat.n})" if stat.n > 1 else "")

    lines = [f"{'scenario':28} {'metric':22} {'baseline':>16} {'candidate':>16} {'change':>16}"]
    for d, v in zip(deltas, verdicts):
        change = f"{d.change:+.1%}" + (f" ±{d.ci95:.1%}" if d.ci95 is not None else "")
        lines.append(
            f"{d.key[3] + ' ' + d.key[4]:28} {d.metric:22} {value(d.base):>16} {value(d.cand):>16} {change:>16}"
            f"{FLAGS[v]}"
        )
    regressions, noisy, short = (verdicts.count(v) for v in ("regression", "inconclusive", "too short"))
    notes = []
    if noisy:
        notes.append(f"{noisy} worse beyond {threshold:.1%} but within the repeats' noise")
    if short:
        notes.append(f"{short} worse beyond {threshold:.1%} on runs under {min_run_s:g} s (too short)")
    lines.append(
        f"{'FAIL' if regressions else 'PASS'}: {regressions} regression(s) beyond {threshold:.1%} in "
        f"{len(deltas)} comparisons" + (f"; not judged: {'; '.join(notes)}" if notes else "")
    )
    return lines, regressions > 0
