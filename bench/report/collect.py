"""What a report is made of: results grouped so that they may be compared (same workload hash, same
model), rows of repeats, and their statistics. `bench.report.gather` reads the files into it."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from bench.results import Result
from bench.results.crosscheck import CrosscheckResult
from bench.results.sections import KvBatches, WorkloadSummary
from bench.results.serve_crosscheck import ServeCrosscheck
from bench.results.serving import ServingResult
from bench.stacks import baseline, default_baseline, order

# Two-sided 95 % Student t quantiles for n - 1 degrees of freedom (no scipy in the collector image).
_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
}
CV_FLAG = 0.05
SHORT_RUN_S = 30.0  # timed runs shorter than this are flagged as too short to trust
DEFAULT_BASELINE = default_baseline()  # the tutorial's baseline: HF one request at a time


def t95(dof: int) -> float:
    keys = [k for k in sorted(_T95) if k <= dof]
    return _T95[keys[-1]] if keys else _T95[1]


@dataclass
class Stat:
    mean: float
    ci95: float | None  # half-width; None for a single value
    cv: float | None
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        mean = statistics.fmean(values)
        if len(values) < 2:
            return cls(mean, None, None, len(values))
        sd = statistics.stdev(values)
        return cls(mean, t95(len(values) - 1) * sd / math.sqrt(len(values)), sd / mean if mean else None, len(values))

    @property
    def noisy(self) -> bool:
        return self.cv is not None and self.cv > CV_FLAG


def verdict(diff: Stat, threshold: float = 0.03) -> str:
    """Whether two measurements agree, from their per-repeat relative differences: "agrees" when the 95 %
    confidence interval of the mean difference lies within ±threshold, "disagrees" when it lies wholly
    outside, else "inconclusive": the runs vary more than the test can resolve (one repeat gives no
    interval). Where a loop varies by several per cent from run to run, a few repeats cannot show agreement
    within 3 %, and saying "within" would not be honest."""
    if diff.ci95 is None:
        return "inconclusive"
    if abs(diff.mean) + diff.ci95 <= threshold:
        return "agrees"
    if abs(diff.mean) - diff.ci95 > threshold:
        return "disagrees"
    return "inconclusive"


@dataclass
class Row:
    """One (stack, scenario) of one group; several results when the scenario was repeated."""

    results: list[Result]

    @property
    def first(self) -> Result:
        return self.results[0]

    @property
    def label(self) -> str:
        r = self.first
        return f"{r.stack} {r.mode}" + _batch_label(r) + ("" if sampled(r) else " (sampler off)")

    @property
    def batch_size(self) -> int | None:
        """Rows per batch, for results whose KV layout is padded batches."""
        return self.first.kv.batch_size if isinstance(self.first.kv, KvBatches) else None

    def stat(self, metric: str) -> Stat:
        return Stat.of([_metric(r, metric) for r in self.results])


def _metric(r: Result, name: str) -> float:
    m = r.metrics
    if name in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms"):
        return getattr(m.latency_ms, name.split("_")[1])
    if name == "peak_memory_mib":
        return (
            r.memory and (r.memory.peak_process_used_mib or r.memory.peak_device_used_mib or r.memory.peak_host_rss_mib)
        ) or 0.0
    return getattr(m, name)


@dataclass
class Group:
    workload_hash: str
    model: str
    workload: WorkloadSummary
    rows: list[Row] = field(default_factory=list)
    failed: list[Result] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Unique among a collection's groups: the workload, the model and the card."""
        return f"{self.workload_hash} {self.model} {self.gpu}"

    @property
    def gpu(self) -> str:
        """The card's name; "(N cards)" when the results came from more than one card of that name."""
        results = [r for row in self.rows for r in row.results] + self.failed
        names = ", ".join(sorted({_card(r) or "CPU" for r in results}))
        cards = _cards(results)
        return f"{names} ({len(cards)} cards)" if len(cards) > 1 else names


def is_number(x) -> bool:
    """A finite int or float (not a bool), as a file's figures must be."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class Collection:
    groups: list[Group]
    problems: list[tuple[str, str]]  # (file, reason)
    results: list[Result]
    files: int
    crosschecks: list[CrosscheckResult] = field(default_factory=list)  # `pagedbench crosscheck --out` files
    serving: list[ServingResult] = field(default_factory=list)  # `pagedbench serve` results
    notes: list[tuple[str, str]] = field(default_factory=list)  # (file, what it is): files that are no results
    gpu_hour_price: float | None = None  # the user's price of a GPU-hour: the report then gives costs
    serve_crosschecks: list[ServeCrosscheck] = field(default_factory=list)  # scripts/serve_crosscheck.py files

    @property
    def readable(self) -> int:
        """How many files the report can show anything of: results of any kind, failed runs included."""
        return len(self.results) + len(self.serving) + len(self.crosschecks) + len(self.serve_crosschecks)


def groups_of(ok: list[Result]) -> list[Group]:
    """The results, grouped by (workload, model, kind of GPU), rows in display order: stacks are compared
    only where they ran on the same kind of card (or both on the CPU)."""
    groups: dict[tuple[str, str, str | None], Group] = {}
    for r in ok:
        model = r.model.spec if r.model else "?"
        g = groups.setdefault((r.workload.hash, model, _card(r)), Group(r.workload.hash, model, r.workload))
        if r.status != "ok":
            g.failed.append(r)
            continue
        for row in g.rows:
            if _row_key(row.first) == _row_key(r):
                row.results.append(r)
                break
        else:
            g.rows.append(Row([r]))
    for g in groups.values():
        g.rows.sort(key=_row_order)
    return sorted(groups.values(), key=lambda g: (g.model, g.workload_hash))


def _batch_label(r: Result) -> str:
    """ " b=8" for padded batches of 8, " b=max=128" for the batch a capacity search found; "" otherwise."""
    if not isinstance(r.kv, KvBatches):
        return ""
    if r.kv.capacity is not None:
        return f" b=max={r.kv.capacity.max_batch}"
    return f" b={r.kv.batch_size}" if r.kv.batch_size not in (None, 1) else ""


def _row_order(row: Row) -> tuple:
    """The registry's order of stacks and of each stack's modes, then by batch size."""
    r = row.first
    return (*order(r.stack, r.mode), row.batch_size if row.batch_size is not None else 10**9, r.scenario)


def sampled(r: Result) -> bool:
    return r.config.sampler


def _row_key(r: Result) -> tuple:
    """Results that are repeats of one measurement: same scenario, same card, same sampling."""
    return r.stack, r.scenario, _card(r), sampled(r)


def one_card(*rows: Row) -> bool:
    """Whether every run of these rows ran on one card (its UUID): timings compare only there. Runs that
    name no card (a CPU) count as one."""
    return len(_cards([r for row in rows for r in row.results])) <= 1


def _cards(results: list[Result]) -> set[str]:
    """The UUIDs of the cards these results ran on."""
    return {r.environment.gpu.uuid for r in results if r.environment.gpu and r.environment.gpu.uuid}


def _card(r: Result) -> str | None:
    return r.environment.gpu.name if r.environment.gpu else None


def named_row(group: Group, spec: str) -> Row | None:
    """The row `stack:mode` or `stack:scenario` names, if the group has it."""
    stack, _, which = spec.partition(":")
    return next((r for r in group.rows if r.first.stack == stack and which in (r.first.mode, r.first.scenario)), None)


def pick_baseline(group: Group, spec: str) -> Row | None:
    """`stack:mode` or `stack:scenario`; falls back to the first row of the baseline stack, then the first row."""
    named = named_row(group, spec)
    if named is not None:
        return named
    base = [row for row in group.rows if is_baseline(row.first.stack)]
    return (base or group.rows or [None])[0]


def on_card(groups: list[Group]):
    """A group's " on CARD", where `groups` came from more than one kind of card (else ""): for a table whose
    rows would not say otherwise which card each ran on."""
    several = len({g.gpu for g in groups}) > 1
    return lambda g: f" on {g.gpu}" if several else ""


def is_baseline(stack: str) -> bool:
    """The stack the others are measured against (the registry says which; a stack it does not know, in an
    old or foreign result, is not)."""
    return stack == baseline().name
