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


def shared_tokens(row: Row) -> float | None:
    """KV tokens that did not need a copy of their own: prompt tokens found in the prefix cache (a block
    pool that counts them), none for padded batches (each row holds its own copy)."""
    kv = row.first.kv
    if isinstance(kv, KvPool) and row.first.workload.spec.beam_width > 1:
        return _beams_shared(row, kv)
    if isinstance(kv, KvPool):
        return kv.prefix_cache_hits
    if isinstance(kv, KvBatches) and kv.prompt_tokens_total is not None:
        return 0.0
    return None


def _beams_shared(row: Row, kv: KvPool) -> float | None:
    """Beam search on a block pool runs every beam's whole sequence at each step, finding the common prefix
    in the prefix cache (so its hits count recomputation saved, not memory): what the beams shared is what
    they would hold apart at their end less what the pool held at its busiest — when every beam was in the
    pool at once then, else unknown."""
    w = row.first.workload
    if None in (kv.peak_usage, kv.pool_tokens, kv.peak_running):
        return None
    if kv.peak_running < w.spec.outputs_per_prompt * w.requests:
        return None
    return max(0.0, needed_tokens(row) - kv.peak_usage * kv.pool_tokens)


def shares(group: Group) -> bool:
    """Whether the workload gives anything to share."""
    spec = group.workload.spec
    return spec.outputs_per_prompt > 1 or spec.shared_prefix_len > 0


def sharing_table(group: Group) -> Table | None:
    if not shares(group) or not group.rows:
        return None
    rows = []
    for row in group.rows:
        needed, shared = needed_tokens(row), shared_tokens(row)
        kv, m = row.first.kv, row.first.metrics
        rows.append(
            [
                row.label,
                row.first.scenario,
                f"{needed:,}",
                fmt(shared, 0),
                pct(shared / needed if shared is not None and needed else None),
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
            "held once for several",
            "memory saved by sharing",
            "prefix-cache hit rate",
            "output tok/s",
            "TTFT p50 ms",
        ],
        rows,
        "Without sharing: prompt + output - 1 KV tokens for every output. Held once for several: prompt tokens a "
        "block pool found in its prefix cache (their KV computed and stored once) or, for beam search, what its "
        "beams would hold apart at their end less what the pool held at its busiest (all beams in it); padded "
        "batches hold every prompt once per row, so they share nothing. Saved: held once over without sharing. "
        + PAPER,
    )
