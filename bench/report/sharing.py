"""Memory saved by sharing: KV that several outputs of a workload hold once (a shared prompt prefix, the n
samples of a prompt), against what they would hold each on their own — the vLLM paper's measure (§6.3),
computed from what the stacks report."""

from __future__ import annotations

from bench.report.collect import Collection, Group, Row, on_card
from bench.report.tables import Table, fmt, pct
from bench.results.sections import KvBatches, KvPool

# The paper's published figures, quoted for reference (Kwon et al., SOSP 2023, §6.3 and Fig. 15: OPT-13B):
# memory saved over n or beam width 2 to 6, by the dataset whose mean lengths its Fig. 11 gives (mean input,
# mean output tokens).
PAPER_SHAPES = {"Alpaca": (19.31, 58.45), "ShareGPT": (161.31, 337.99)}
PAPER_SAVED = {
    ("Alpaca", "parallel sampling"): (0.061, 0.098),
    ("ShareGPT", "parallel sampling"): (0.162, 0.305),
    ("Alpaca", "beam search"): (0.376, 0.552),
    ("ShareGPT", "beam search"): (0.443, 0.663),
}
SHAPE_TOLERANCE = 0.25  # a workload's mean prompt within this share of a dataset's takes its shape


def paper_range(shape: str, kind: str) -> str:
    low, high = PAPER_SAVED[(shape, kind)]
    return f"{pct(low)} – {pct(high)}"


PAPER = (
    "For reference, the vLLM paper's figures (OPT-13B on its engine of 2023, not measured here): "
    + "; ".join(f"{kind} saved {paper_range(shape, kind)} of KV memory on {shape}" for shape, kind in PAPER_SAVED)
    + "."
)


def paper_shape(group: Group) -> str | None:
    """The paper's dataset whose mean prompt length the workload's is within SHAPE_TOLERANCE of, if any."""
    mean = group.workload.prompt_len.mean
    for name, (prompt, _) in PAPER_SHAPES.items():
        if abs(mean - prompt) <= SHAPE_TOLERANCE * prompt:
            return name
    return None


def needed_tokens(row: Row) -> int:
    """KV tokens every output would hold on its own at its end: prompt + output - 1 each."""
    w = row.first.workload
    n = w.spec.outputs_per_prompt
    return n * w.prompt_tokens + w.output_tokens - n * w.requests


def saved(row: Row) -> tuple[float | None, float | None]:
    """Memory saved by sharing over the run and at its busiest moment: for a block pool, the engine probe's
    1 - physical / logical blocks (None where the scenario did not run it); padded batches hold every
    prompt once per row, so they save nothing."""
    kv = row.first.kv
    if isinstance(kv, KvPool):
        probe = kv.sharing
        return (probe.saved, probe.saved_at_peak) if probe is not None else (None, None)
    if isinstance(kv, KvBatches) and kv.prompt_tokens_total is not None:
        return 0.0, 0.0
    return None, None


def held_share(row: Row) -> float | None:
    kv, elapsed = row.first.kv, row.first.metrics.elapsed_s
    probe = kv.sharing if isinstance(kv, KvPool) else None
    if probe is None or probe.busy_s is None or not elapsed:
        return None
    return probe.busy_s / elapsed


def _kind(group: Group) -> tuple[str, int] | None:
    spec = group.workload.spec
    if spec.shared_prefix_len:
        return None
    if spec.beam_width > 1:
        return "beam search", spec.beam_width
    if spec.samples_per_prompt > 1:
        return "parallel sampling", spec.samples_per_prompt
    return None


def paper_table(c: Collection) -> Table | None:
    """The paper's Fig. 15 side by side: memory saved by parallel sampling and beam search on the Alpaca- and
    ShareGPT-shaped workloads, on each stack, next to the paper's range."""
    rows = []
    shown = [(g, shape, kind) for g in c.groups if (shape := paper_shape(g)) and (kind := _kind(g))]
    card = on_card([g for g, _, _ in shown])
    for g, shape, kind in shown:
        for row in g.rows:
            over_run, at_peak = saved(row)
            rows.append(
                [
                    f"{shape}-shaped",
                    kind[0],
                    str(kind[1]),
                    row.label + card(g),
                    row.first.scenario,
                    pct(over_run),
                    pct(at_peak),
                    paper_range(shape, kind[0]),
                ]  # fmt: skip
            )
    if not rows:
        return None
    rows.sort(key=lambda r: (r[0], r[1], int(r[2]), r[3]))
    return Table(
        "Memory saved by sharing, beside the vLLM paper's (Fig. 15)",
        [
            "workload",
            "sharing",
            "n / beam width",
            "stack / mode",
            "scenario",
            "saved (this run)",
            "at the busiest moment",
            "the paper's, n or width 2–6",
        ],  # fmt: skip
        rows,
        f"A workload takes a dataset's shape when its mean prompt length is within {SHAPE_TOLERANCE:.0%} of the "
        "dataset's ("
        + ", ".join(f"{name} {prompt:g} tokens" for name, (prompt, _) in PAPER_SHAPES.items())
        + ", the paper's Fig. 11). The paper's range is its figure over n or "
        "beam width 2 to 6 for OPT-13B on vLLM as of 2023 (quoted, not measured here); this run's figures are "
        "this model on this engine, read as in the Sharing tables.",
    )


def modes_left_out(group: Group) -> list[str]:
    """For every stack in the table, each of its modes that did not run here and why: the mode refuses the
    workload (its own reason), or no result here ran it (the suite did not ask for it, or its run is elsewhere)."""
    from bench.stacks import STACKS, options_models

    ran = {(row.first.stack, row.first.mode) for row in group.rows}
    models = options_models()
    out = []
    for stack in sorted({stack for stack, _ in ran if stack in STACKS}, key=list(STACKS).index):
        for mode in STACKS[stack].modes:
            if (stack, mode) in ran:
                continue
            probe = models[stack](name="probe", stack=stack, mode=mode, workload=group.workload.name)
            why = probe.workload_refusal(group.workload.spec)
            said = f"cannot run this workload ({why})" if why else "not among these results"
            out.append(f"{stack} {mode}: {said}")
    return out


def shares(group: Group) -> bool:
    """Whether the workload gives anything to share."""
    spec = group.workload.spec
    return spec.outputs_per_prompt > 1 or spec.shared_prefix_len > 0


def sharing_table(group: Group) -> Table | None:
    if not shares(group) or not group.rows:
        return None
    rows = []
    for row in group.rows:
        over_run, at_peak = saved(row)
        kv, m = row.first.kv, row.first.metrics
        rows.append(
            [
                row.label,
                row.first.scenario,
                f"{needed_tokens(row):,}",
                pct(over_run),
                pct(at_peak),
                pct(kv.prefix_hit_rate if isinstance(kv, KvPool) else None),
                pct(held_share(row)),
                fmt(m.output_tokens_per_s, 0),
                fmt(m.ttft_ms.p50 if m.ttft_ms else None, 0),
            ]
        )
    spec = group.workload.spec
    per = f"beam width {spec.beam_width}" if spec.beam_width > 1 else f"{spec.samples_per_prompt} sample(s) per prompt"
    return Table(
        f"Sharing — {per}, a shared prefix of {spec.shared_prefix_len} tokens",
        [
            "stack / mode",
            "scenario",
            "KV tokens without sharing",
            "memory saved by sharing",
            "saved at the busiest moment",
            "prefix-cache hit rate",
            "engine held sequences",
            "output tok/s",
            "TTFT p50 ms",
        ],
        rows,
        "Memory saved by sharing, the vLLM paper's measure: 1 - physical KV blocks in use / logical blocks (every "
        "running sequence's block table, a block several share counted once for each), read in the engine after "
        "every step and weighted by the time each state held (kv_sharing_probe; — where a scenario did not run "
        "it); at the busiest moment: when the most physical blocks were in use. Padded batches hold every prompt "
        "once per row: they save nothing. Without sharing: prompt + output - 1 KV tokens for every output, at "
        "their end. Prefix-cache hit rate: prompt tokens the engine found cached, a count of prefill saved. Engine "
        "held sequences: the share of the timed run during which the engine held any (the rest is host time "
        "outside its steps: vLLM's beam search runs each step as a request of its own per beam). "
        + PAPER
        + (" Modes not in this table: " + "; ".join(left) + "." if (left := modes_left_out(group)) else ""),
    )
