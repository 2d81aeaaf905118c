"""A quantised KV cache (fp8) against the model's own dtype on the same workload: how many more blocks the
same memory holds, the throughput with its 95 % interval over repeats, and whether the GPU or the host set
the pace (the GPU's busy share during the timed runs), which is what a wide spread usually means."""

from __future__ import annotations

from statistics import fmean

from bench.report.collect import Group, Row, one_card
from bench.report.tables import GIB, Table, fmt, pct, with_ci
from bench.results.sections import KvPool

HOST_BOUND_BELOW = 0.9  # a GPU busy less than this share of the timed run waited on the host


def _dtype(row: Row) -> str | None:
    return row.first.config.options.get("kv_cache_dtype")


def gpu_busy(row: Row) -> float | None:
    """The mean NVML utilisation over every timed run's samples (a share), where the device reported it."""
    values = [
        s.gpu_util_pct / 100
        for r in row.results
        if r.memory is not None
        for s in r.memory.timeline
        if s.phase == "run" and s.gpu_util_pct is not None
    ]
    return fmean(values) if values else None


def kv_dtype_table(group: Group) -> Table | None:
    pools = [row for row in group.rows if isinstance(row.first.kv, KvPool) and row.first.kv.pool_blocks]
    quantised = [row for row in pools if _dtype(row) == "fp8"]
    plain = [row for row in pools if _dtype(row) in (None, "auto")]
    if not quantised or not plain:
        return None
    base = plain[0]
    rows = []
    for row in [base, *quantised]:
        kv, busy = row.first.kv, gpu_busy(row)
        pace = "—" if busy is None else ("the host (GPU waits)" if busy < HOST_BOUND_BELOW else "the GPU")
        rows.append(
            [
                row.label,
                row.first.scenario,
                _dtype(row) or "auto (the model's)",
                fmt(kv.bytes_per_token, 0),
                f"{kv.pool_blocks:,}",
                f"{kv.pool_blocks / base.first.kv.pool_blocks:.2f}x",
                fmt(kv.reserved_bytes_peak / GIB if kv.reserved_bytes_peak else None, 2),
                fmt(row.first.config.memory_budget_gib, 0),
                with_ci(row, "output_tokens_per_s", 0),
                f"{row.stat('output_tokens_per_s').mean / base.stat('output_tokens_per_s').mean:.2f}x"
                if one_card(row, base)
                else "— (another card)",
                pct(busy),
                pace,
            ]
        )
    return Table(
        "KV cache dtype — fp8 against the model's own",
        [
            "stack / mode",
            "scenario",
            "KV dtype",
            "KV bytes / token",
            "pool blocks",
            "blocks vs auto",
            "KV GiB set aside",
            "memory budget GiB",
            "output tok/s",
            "tok/s vs auto",
            "GPU busy",
            "pace set by",
        ],  # fmt: skip
        rows,
        "Blocks vs auto: the pool's blocks over the model's dtype's, the engine given the same memory: about the "
        "inverse of their bytes per token (fp8 stores one byte per element). Output tok/s: the mean over "
        "repeats ± its 95 % interval; against auto only where both ran on one card. GPU busy: NVML's "
        "utilisation averaged over the timed runs' samples; "
        f"below {HOST_BOUND_BELOW:.0%} the GPU waited on the host (the engine's loop, the sampler), whose speed "
        "then sets the throughput and its spread between repeats.",
    )
