"""The report's first section: the baseline stack (HF) against each engine (vLLM) on the same workload and
model, at each stack's best and at equal memory, with the ratios written out. Computed from the groups;
nothing is said that the results do not show, and a workload only one stack ran is named as such rather
than compared. Which stack is which comes from the registry (its `role` and `label`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.report.collect import SHORT_RUN_S, Collection, Group, Row, one_card, sampled
from bench.report.frontier import within_slos
from bench.report.tables import GIB, Table, fmt, pct, sig
from bench.results.sections import KvBatches, KvPool
from bench.stacks import STACKS, baseline

# Which share of KV memory holds tokens, defined once for every stack:
#  - "of set aside": bytes holding tokens at the stack's busiest moment over the bytes it had set aside for
#    KV then (HF: its cache tensors; vLLM: its whole block pool, reserved when the engine starts);
#  - "of handed out": bytes holding tokens over the bytes its allocator handed to sequences (HF: every
#    row's cache slots; vLLM: the blocks allocated to sequences).


@dataclass
class Side:
    """One row of the headline: a stack/mode at its best, or at a memory budget."""

    row: Row

    @property
    def kv(self) -> KvBatches | KvPool | None:
        return self.row.first.kv

    @property
    def set_aside(self) -> float | None:
        """The share of the KV memory set aside that held tokens at the busiest moment."""
        return self.kv.utilization_at_peak if self.kv is not None else None

    @property
    def handed_out(self) -> float | None:
        """The share of the KV memory handed to sequences that held tokens."""
        return self.kv.utilization if self.kv is not None else None

    @property
    def reserved(self) -> int | None:
        return self.kv.reserved_bytes_peak if self.kv is not None else None

    @property
    def searched(self) -> bool:
        """Its sequences are the largest batch a capacity search found."""
        return isinstance(self.kv, KvBatches) and self.kv.capacity is not None

    @property
    def tps(self) -> float:
        return self.row.stat("output_tokens_per_s").mean

    @property
    def sequences(self) -> float | None:
        """The most sequences the stack held at once: a padded layout's largest batch (or the batch a
        capacity search found) times the outputs per prompt (n samples or beams each hold a row), a block pool's
        peak of running sequences."""
        n = self.kv.sequences if self.kv is not None else None
        if n is not None and isinstance(self.kv, KvBatches):
            # a batch holds no more prompts than the workload has (32 prompts in batches of 64: 32)
            n = min(n, self.row.first.workload.requests) * self.row.first.workload.spec.outputs_per_prompt
        return float(n) if n is not None else None

    @property
    def budget_gib(self) -> float | None:
        return self.row.first.config.memory_budget_gib


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


def memory(x: float | None) -> str:
    """Bytes in the unit that shows them: GiB from a tenth of one, else MiB or KiB, so that a real
    quantity is never printed as 0.00."""
    if not x:
        return fmt(None)
    for unit, size in (("GiB", GIB), ("MiB", 2**20)):
        if x >= size / 10:
            return f"{x / size:,.2f} {unit}"
    return f"{x / 1024:,.1f} KiB"


def side_row(title: str, side: Side) -> list[str]:
    r, reserved = side.row.first, side.reserved
    held = reserved * side.set_aside if reserved and side.set_aside is not None else None
    lat = r.metrics.latency_ms
    return [
        title,
        f"{side.row.label} ({r.scenario})",
        memory(reserved),
        memory(held),
        pct(side.set_aside),
        pct(side.handed_out),
        fmt(side.sequences, 0),
        fmt(side.tps, 0),
        f"{fmt(lat.p50, 0)} / {fmt(lat.p99, 0)}",
    ]


def _layout_words(side: Side) -> str:
    """What a stack's KV memory set aside is, in words, from its layout."""
    return "its whole pool, reserved at start" if isinstance(side.kv, KvPool) else "of cache tensors"


def _failed_word(group: Group) -> str:
    return "failed" if all(r.status == "failed" for r in group.failed) else "did not finish"


def _rows_of(group: Group, stack: str) -> list[Row]:
    return [row for row in group.rows if row.first.stack == stack]


def _pairs_at_equal_memory(group: Group, base: str, engine: str) -> list[tuple[float, Row, Row]]:
    """(budget, baseline row, engine row) for every budget both stacks ran at; each one's best at it."""
    by_budget: dict[float, dict[str, list[Row]]] = {}
    for row in group.rows:
        b = Side(row).budget_gib
        if b is not None:
            by_budget.setdefault(b, {}).setdefault(row.first.stack, []).append(row)
    return [
        (b, _best(stacks[base]), _best(stacks[engine]))
        for b, stacks in sorted(by_budget.items())
        if stacks.get(base) and stacks.get(engine)
    ]


def _equal_memory_sentence(where: str, budget: float, hb: Side, vb: Side, b: str, e: str) -> str:
    tps, certainty = ratio(vb.row, hb.row)
    fits = ""
    if hb.sequences and vb.sequences:
        held = (
            f"{b} fitted at most {hb.sequences:,.0f} sequences (its largest batch that completed)"
            if hb.searched
            else f"{b} ran batches of {hb.sequences:,.0f}"
        )
        fits = (
            f"{held} and {e} kept up to {vb.sequences:,.0f} running at once "
            f"({vb.sequences / hb.sequences:.1f}× as many), "
        )
    return (
        f"{where}, at the same memory budget of {budget:g} GiB: {fits}with {e} at **{tps:.2f}×** {b}'s "
        f"output throughput ({certainty}){_cards_clause(hb.row, vb.row)}"
    )


def _cards_clause(a: Row, b: Row) -> str:
    """The end of a sentence comparing two rows' timings: where they ran on two cards, it says so."""
    two = ", on two cards of this kind: the ratio holds their and their hosts' difference too."
    return "." if one_card(a, b) else two


def _energy_sentence(h: Side, v: Side, b: str, e: str) -> str | None:
    """Joules per output token on each side, where both measured them on their GPUs."""
    eh, ev = (side.row.first.energy for side in (h, v))
    if eh is None or ev is None or eh.per_output_token_j is None or ev.per_output_token_j is None:
        return None
    idle = f"; the GPUs drew {ev.idle_power_w:,.0f} W idle" if ev.idle_power_w is not None else ""
    return (
        f"Energy per output token over the timed runs: {sig(ev.per_output_token_j)} J in {e} "
        f"({fmt(ev.mean_power_w, 0)} W on average) and {sig(eh.per_output_token_j)} J in {b} "
        f"({fmt(eh.mean_power_w, 0)} W), from {ev.source}{idle}."
    )


def _kv_sentence(h: Side, v: Side, b: str, e: str) -> str | None:
    if v.set_aside is None or h.set_aside is None:
        return None
    return (
        f"Of the KV memory each had set aside at its busiest, {pct(v.set_aside)} held tokens in {e} "
        f"({memory(v.reserved)}, {_layout_words(v)}) and {pct(h.set_aside)} in {b} ({memory(h.reserved)} "
        f"{_layout_words(h)}); of what each had handed to sequences, {pct(v.handed_out)} and {pct(h.handed_out)}."
    )


_HEADERS = [
    "",
    "stack / mode (scenario)",
    "KV set aside",
    "holding tokens",
    "of set aside",
    "of handed out",
    "sequences at once",
    "output tok/s",
    "latency p50 / p99 ms",
]
_NOTE = (
    "KV holding tokens, for every stack: of set aside — bytes holding tokens at the stack's busiest moment "
    "over the bytes it had set aside for KV (padded batches: the cache tensors; a block pool: the whole pool); "
    "of handed out — over the bytes its allocator gave to sequences (padded batches: every row's slots; a "
    "block pool: the blocks allocated to sequences)."
)


@dataclass
class Compared:
    """One group's comparison, worked out once: each stack's best row and the memory budgets both ran at
    (budget, baseline's best there, engine's best there)."""

    base: Row
    engine: Row
    pairs: list[tuple[float, Row, Row]]


def _compared(group: Group, base: str, engine: str) -> Compared | None:
    hf, vllm = _best(_rows_of(group, base)), _best(_rows_of(group, engine))
    return None if hf is None or vllm is None else Compared(hf, vllm, _pairs_at_equal_memory(group, base, engine))


def _titled(c: Compared, b: str, e: str) -> list[tuple[str, Side]]:
    budgets = {id(row): f", at {x:g} GiB" for x, *both in c.pairs for row in both}
    found = [(f"{b} at its best{budgets.get(id(c.base), '')}", Side(c.base))]
    found.append((f"{e} at its best{budgets.get(id(c.engine), '')}", Side(c.engine)))
    for budget, hf_b, vllm_b in c.pairs:
        if (hf_b, vllm_b) != (c.base, c.engine):
            found += [(f"{b} at {budget:g} GiB", Side(hf_b)), (f"{e} at {budget:g} GiB", Side(vllm_b))]
    return found


def sides(group: Group, base: str, engine: str) -> list[tuple[str, Side]]:
    """The side-by-side rows of a group, titled: each stack at its best, then both at each memory budget
    both ran at (where that is not their best already); none when one stack did not run it."""
    c = _compared(group, base, engine)
    return [] if c is None else _titled(c, STACKS[base].label, STACKS[engine].label)


def group_headline(group: Group, base: str, engine: str, others=()) -> tuple[list[str], Table | None]:
    """Sentences and the side-by-side table of one (workload, model, card) group: `base` against `engine`.
    `others`: the collection's other groups, to say where the missing stack ran the workload instead."""
    b, e = STACKS[base].label, STACKS[engine].label
    c = _compared(group, base, engine)
    where = f"{group.model} on {group.gpu}, workload {group.workload.name} `{group.workload_hash}`"
    if c is None:
        failed = ", ".join(f"{r.stack} {r.scenario}" for r in group.failed)
        if not group.rows:
            return [f"{where}: no scenario of this workload succeeded ({failed} {_failed_word(group)})."], None
        missing = engine if _best(_rows_of(group, engine)) is None else base
        only = b if missing == engine else e
        ran = ", ".join(f"{row.label} ({row.first.scenario})" for row in group.rows)
        also = f"; {failed} {_failed_word(group)}" if failed else ""
        cards = [
            g.gpu
            for g in others
            if (g.workload_hash, g.model) == (group.workload_hash, group.model) and _best(_rows_of(g, missing))
        ]
        why = "nothing to compare it with"
        if cards:
            why = f"{STACKS[missing].label} ran it on {', '.join(cards)}, and stacks are compared on one kind of card"
        return [f"{where}: only {only} ran this workload ({ran}{also}); {why}."], None
    hf, vllm, pairs = c.base, c.engine, c.pairs
    value, certainty = ratio(vllm, hf)
    h, v = Side(hf), Side(vllm)
    lines = [
        f"{where}: {e}'s best ({vllm.label}, {vllm.first.scenario}) produced **{value:.2f}×** the output "
        f"throughput of {b}'s best ({hf.label}, {hf.first.scenario}): {v.tps:,.0f} against {h.tps:,.0f} tok/s "
        f"({certainty}), on the same requests{_cards_clause(hf, vllm)}"
    ]
    lines += [x for x in [_kv_sentence(h, v, b, e), _energy_sentence(h, v, b, e)] if x]
    if any((hf_b, vllm_b) == (hf, vllm) for _, hf_b, vllm_b in pairs):
        lines = lines[1:]  # both bests ran at one budget: the equal-memory sentence says it, once
    at_budget = [_equal_memory_sentence(where, x, Side(hf_b), Side(vllm_b), b, e) for x, hf_b, vllm_b in pairs]
    shown = _titled(c, b, e)
    table = Table(
        f"{b} and {e} side by side — {group.model}, workload {group.workload.name}",
        _HEADERS,
        [side_row(title, side) for title, side in shown],
        _NOTE,
    )
    # What the figures cannot tell comes first; then the capacity answer, when there is one: it is the
    # question PagedBench asks.
    return caveats(group, [side.row for _, side in shown]) + at_budget + lines, table


def caveats(group: Group, rows: list[Row]) -> list[str]:
    """What the compared figures cannot tell, said before them: a run on a CPU, a timed run too short."""
    said, rows = [], list({id(row): row for row in rows}.values())
    if any(r.environment.device == "cpu" or r.environment.gpu is None for row in rows for r in row.results):
        said.append(
            "**A CPU run**: these figures say what a CPU does with each stack, not what PagedAttention buys on "
            "a GPU; the ratios below mean little until they are measured on one."
        )
    short = [row for row in rows if row.stat("elapsed_s").mean < SHORT_RUN_S]
    if short:
        runs = ", ".join(f"{row.label} {row.stat('elapsed_s').mean:.1f} s" for row in short)
        said.append(
            f"**Short runs**: timed for under {SHORT_RUN_S:.0f} s ({runs}), so the throughput and the ratio "
            "carry start-up and sampling noise; a larger workload confirms them."
        )
    return said


def compared() -> list[tuple[str, str]]:
    """(baseline stack, engine stack) pairs the headline compares, in the registry's order."""
    return [(baseline().name, n) for n, spec in STACKS.items() if spec.role == "engine"]


def title() -> str:
    """The headline's title: "HF and vLLM: the answer"."""
    names = [STACKS[n].label for n in dict.fromkeys(x for pair in compared() for x in pair)]
    return f"{' and '.join(names)}: the answer"


def headline(c: Collection) -> tuple[list[str], list[Table]]:
    """The answer first: one entry per workload both stacks ran, then the workloads only one stack ran."""
    lines, tables, single = [], [], []
    for base, engine in compared():
        # Groups with an equal-memory comparison first.
        for group in sorted(c.groups, key=lambda g: not _pairs_at_equal_memory(g, base, engine)):
            sentences, table = group_headline(group, base, engine, c.groups)
            if table is None:
                single += sentences
            else:
                lines += sentences
                tables.append(table)
    if not tables:
        labels = " and ".join(STACKS[n].label for pair in compared()[:1] for n in pair)
        lines.append(f"No workload was run by both {labels}: this report has no like-for-like comparison.")
    if tables:
        single = [f"Not like for like, so not compared above: {x}" for x in single]
    return lines + within_slos(c.serving) + single, tables
