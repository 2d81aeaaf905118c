"""Memory saved by sharing: KV that several outputs of a workload hold once (a shared prompt prefix, the n
samples of a prompt), against what they would hold each on their own — the vLLM paper's measure (§6.3),
computed from what the stacks report."""

from __future__ import annotations

from bench.report.collect import Group, Row
from bench.report.tables import Table, fmt, pct
from bench.results.sections import KvBatches, KvPool

# The paper's published figures, quoted for reference (Kwon et al., SOSP 2023, §6.3 and Fig. 15: OPT-13B).
PAPER = (
    "For reference, the vLLM paper's figures (OPT-13B on its engine of 2023, not measured here): parallel "
    "sampling saved 6.1–9.8 % of KV memory on Alpaca and 16.2–30.5 % on ShareGPT; beam search 37.6–55.2 % "
    "and 44.3–66.3 %."
)


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
            "output tok/s",
            "TTFT p50 ms",
        ],
        rows,
        "Memory saved by sharing, the vLLM paper's measure: 1 - physical KV blocks in use / logical blocks (every "
        "running sequence's block table, a block several share counted once for each), read in the engine after "
        "every step and weighted by the time each state held (kv_sharing_probe; — where a scenario did not run "
        "it); at the busiest moment: when the most physical blocks were in use. Padded batches hold every prompt "
        "once per row: they save nothing. Without sharing: prompt + output - 1 KV tokens for every output, at "
        "their end. Prefix-cache hit rate: prompt tokens the engine found cached, a count of prefill saved. "
        + PAPER,
    )
