"""The report's first section: HF against vLLM on the same workload and model, at each stack's best and at
equal memory, with the ratios written out. Computed from the groups; nothing is said that the results do
not show, and a workload only one stack ran is named as such rather than compared."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.report.collect import Collection, Group, Row, sampled
from bench.report.tables import GIB, Table, fmt, pct

# Which share of KV memory holds tokens, defined once for every stack:
#  - "of set aside": bytes holding tokens at the stack's busiest moment over the bytes it had set aside for
#    KV then (HF: its cache tensors; vLLM: its whole block pool, reserved when the engine starts);
#  - "of handed out": bytes holding tokens over the bytes its allocator handed to sequences (HF: every
#    row's cache slots; vLLM: the blocks allocated to sequences).
SET_ASIDE = "utilization_at_peak"
HANDED_OUT = "utilization"


@dataclass
class Side:
    """One row of the headline: a stack/mode at its best, or at a memory budget."""

    row: Row

    @property
    def kv(self) -> dict:
        return self.row.first.kv or {}

    @property
    def tps(self) -> float:
        return self.row.stat("output_tokens_per_s").mean

    @property
    def sequences(self) -> float | None:
        """The most sequences the stack held at once: HF's batch (or the batch its capacity search found),
        vLLM's peak of running requests."""
        r = self.row.first
        cap = self.kv.get("capacity")
        if isinstance(cap, dict) and cap.get("max_batch"):
            return float(cap["max_batch"])
        if self.kv.get("peak_running") is not None:
            return float(self.kv["peak_running"])
        if r.stack == "hf" and r.mode == "sequential":
            return 1.0
        batch = r.config.get("batch_size")
        return float(batch) if isinstance(batch, int) else None

    @property
    def budget_gib(self) -> float | None:
        b = self.row.first.config.get("memory_budget_gib")
        return float(b) if b is not None else None


def ratio(a: Row, b: Row, metric: str = "output_tokens_per_s") -> tuple[float, str]:
    """a ÷ b and how certain it is: a 95 % interval from both rows' repeats, or "single run"."""
    sa, sb = a.stat(metric), b.stat(metric)
    value = sa.mean / sb.mean
    rel = [s.ci95 / s.mean for s in (sa, sb) if s.ci95 is not None and s.mean]
    if not rel:
        return value, "single run" + ("s" if sa.n == sb.n == 1 else "")
    return value, f"± {value * math.sqrt(sum(x * x for x in rel)):.2f} at 95 %, over {sa.n} and {sb.n} runs"


def _best(rows: list[Row]) -> Row | None:
    """The fastest row, among the normal runs (a sampler-off row measures the sampler, not the stack)."""
    measured = [r for r in rows if sampled(r.first)]
    return max(measured, key=lambda r: r.stat("output_tokens_per_s").mean, default=None)


def _gib(x: float | None) -> str:
    return fmt(x / GIB if x else None, 2)


def side_row(title: str, side: Side) -> list[str]:
    kv, r = side.kv, side.row.first
    reserved = kv.get("reserved_bytes_peak")
    held = reserved * kv[SET_ASIDE] if reserved and kv.get(SET_ASIDE) is not None else None
    lat = r.metrics.latency_ms
    return [
        title,
        f"{side.row.label} ({r.scenario})",
        _gib(reserved),
        _gib(held),
        pct(kv.get(SET_ASIDE)),
        pct(kv.get(HANDED_OUT)),
        fmt(side.sequences, 0),
        fmt(side.tps, 0),
        f"{fmt(lat.p50, 0)} / {fmt(lat.p99, 0)}",
    ]


def _pairs_at_equal_memory(group: Group) -> list[tuple[float, Row, Row]]:
    """(budget, HF row, vLLM row) for every budget both stacks ran at; HF's best row at it."""
    by_budget: dict[float, dict[str, list[Row]]] = {}
    for row in group.rows:
        b = Side(row).budget_gib
        if b is not None:
            by_budget.setdefault(b, {}).setdefault(row.first.stack, []).append(row)
    return [
        (b, _best(stacks["hf"]), _best(stacks["vllm"]))
        for b, stacks in sorted(by_budget.items())
        if stacks.get("hf") and stacks.get("vllm")
    ]


def group_headline(group: Group) -> tuple[list[str], Table | None]:
    """Sentences and the side-by-side table of one (workload, model) group."""
    hf = _best([row for row in group.rows if row.first.stack == "hf"])
    vllm = _best([row for row in group.rows if row.first.stack == "vllm"])
    where = f"{group.model} on {group.gpu}, workload {group.workload.get('name', '?')} `{group.workload_hash}`"
    if hf is None or vllm is None:
        only = "HF" if vllm is None else "vLLM"
        ran = ", ".join(f"{row.label} ({row.first.scenario})" for row in group.rows) or "no successful scenario"
        return [f"{where}: only {only} ran this workload ({ran}); nothing to compare it with."], None
    lines, at_budget = [], []
    value, certainty = ratio(vllm, hf)
    h, v = Side(hf), Side(vllm)
    lines.append(
        f"{where}: vLLM's best ({vllm.label}, {vllm.first.scenario}) produced **{value:.2f}×** the output "
        f"throughput of HF's best ({hf.label}, {hf.first.scenario}): {v.tps:,.0f} against {h.tps:,.0f} tok/s "
        f"({certainty}), on the same requests."
    )
    if v.kv.get(SET_ASIDE) is not None and h.kv.get(SET_ASIDE) is not None:
        lines.append(
            f"Of the KV memory each had set aside at its busiest, {pct(v.kv[SET_ASIDE])} held tokens in vLLM "
            f"({_gib(v.kv.get('reserved_bytes_peak'))} GiB, its whole pool, reserved at start) and "
            f"{pct(h.kv[SET_ASIDE])} in HF ({_gib(h.kv.get('reserved_bytes_peak'))} GiB of cache tensors); of "
            f"what each had handed to sequences, {pct(v.kv.get(HANDED_OUT))} and {pct(h.kv.get(HANDED_OUT))}."
        )
    pairs = _pairs_at_equal_memory(group)
    budgets = {id(row): f", at {b:g} GiB" for b, *both in pairs for row in both}
    rows = [side_row(f"HF at its best{budgets.get(id(hf), '')}", h)]
    rows.append(side_row(f"vLLM at its best{budgets.get(id(vllm), '')}", v))
    for budget, hf_b, vllm_b in pairs:
        hb, vb = Side(hf_b), Side(vllm_b)
        tps, tps_certainty = ratio(vllm_b, hf_b)
        fits = ""
        if hb.sequences and vb.sequences:
            hf_held = (
                f"HF fitted at most {hb.sequences:,.0f} sequences (its largest batch that completed)"
                if isinstance(hb.kv.get("capacity"), dict)
                else f"HF ran batches of {hb.sequences:,.0f}"
            )
            fits = (
                f"{hf_held} and vLLM kept up to {vb.sequences:,.0f} running at once "
                f"({vb.sequences / hb.sequences:.1f}× as many), "
            )
        at_budget.append(
            f"{where}, at the same memory budget of {budget:g} GiB: {fits}with vLLM at **{tps:.2f}×** HF's "
            f"output throughput ({tps_certainty})."
        )
        if (hf_b, vllm_b) != (hf, vllm):
            rows += [side_row(f"HF at {budget:g} GiB", hb), side_row(f"vLLM at {budget:g} GiB", vb)]
    table = Table(
        f"HF and vLLM side by side — {group.model}, workload {group.workload.get('name', '?')}",
        [
            "",
            "stack / mode (scenario)",
            "KV set aside GiB",
            "holding tokens GiB",
            "of set aside",
            "of handed out",
            "sequences at once",
            "output tok/s",
            "latency p50 / p99 ms",
        ],
        rows,
        "KV holding tokens, for every stack: of set aside — bytes holding tokens at the stack's busiest moment "
        "over the bytes it had set aside for KV (HF: its cache tensors; vLLM: its whole block pool); of handed "
        "out — over the bytes its allocator gave to sequences (HF: every row's slots; vLLM: allocated blocks).",
    )
    # The capacity answer, when there is one, is the question PagedBench asks: it comes first.
    return at_budget + lines, table


def headline(c: Collection) -> tuple[list[str], list[Table]]:
    """The answer first: one entry per workload both stacks ran, then the workloads only one stack ran."""
    lines, tables, single = [], [], []
    # Groups with an equal-memory comparison first.
    for group in sorted(c.groups, key=lambda g: not _pairs_at_equal_memory(g)):
        sentences, table = group_headline(group)
        if table is None:
            single += sentences
        else:
            lines += sentences
            tables.append(table)
    if not tables:
        lines.append("No workload was run by both HF and vLLM: this report has no like-for-like comparison.")
    if tables and single:
        lines.append("Not like for like, so not compared above:")
    return lines + single, tables
