"""Per-GPU figures of runs that spanned several devices: each device's peak memory and the run's share of
it, and the output throughput per GPU the run used."""

from __future__ import annotations

from bench.report.collect import Group
from bench.report.tables import Table, fmt


def gpus_used(peaks) -> int:
    """The devices the run's processes held memory on (all of them when per-process use is not visible)."""
    used = [p for p in peaks if p.peak_process_used_mib]
    return len(used) or len(peaks)


def per_gpu_table(group: Group) -> Table | None:
    rows = []
    for row in group.rows:
        r = row.first
        peaks = r.memory.per_gpu if r.memory else []
        if len(peaks) < 2:
            continue
        n = gpus_used(peaks)
        tok_s = r.metrics.output_tokens_per_s if r.metrics else None
        for p in peaks:
            rows.append(
                [
                    row.label,
                    r.scenario,
                    str(p.index),
                    fmt(p.peak_used_mib, 0),
                    fmt(p.peak_process_used_mib, 0),
                    str(n),
                    fmt(tok_s, 0),
                    fmt(tok_s / n if tok_s else None, 0),
                ]
            )
    if not rows:
        return None
    return Table(
        "Per GPU",
        [
            "stack / mode",
            "scenario",
            "GPU",
            "peak used MiB",
            "this run's peak MiB",
            "GPUs used",
            "output tok/s",
            "output tok/s per GPU",
        ],
        rows,
        "Runs whose CUDA saw several devices: every device was sampled. GPUs used: the devices the run's "
        "processes held memory on; per GPU: the run's output throughput over them.",
    )
