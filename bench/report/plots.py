"""Charts for the HTML report, as embedded PNG data URIs (the page needs no network and no other file)."""

from __future__ import annotations

import base64
import io

from bench.report.collect import Group, Row, sampled
from bench.results.sections import KvBatches
from bench.stacks import STACKS


def stack_color(stack: str) -> str:
    """The stack's colour in every chart (grey for a stack this PagedBench does not know)."""
    spec = STACKS.get(stack)
    return spec.color if spec else "#8c8c8c"


def _color(row: Row) -> str:
    return stack_color(row.first.stack)


def data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def throughput(group: Group):
    import matplotlib.pyplot as plt

    rows = group.rows
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    values = [r.stat("output_tokens_per_s") for r in rows]
    ax.barh(
        [r.label for r in rows],
        [v.mean for v in values],
        xerr=[v.ci95 or 0 for v in values],
        color=[_color(r) for r in rows],
    )
    for i, v in enumerate(values):  # the label clear of the error bar
        ax.text(v.mean + (v.ci95 or 0), i, f" {v.mean:,.0f}", va="center", fontsize=8)
    ax.set_xlim(left=0)  # bars from zero: a small difference looks small
    ax.set_xlabel("output tokens / s (higher is better)")
    ax.invert_yaxis()
    return "Output throughput per stack and mode", data_uri(fig)


def throughput_vs_batch(group: Group):
    """One line per stack and mode that ran padded batches at two sizes or more; the other rows (block
    pools, say) as horizontal lines to compare with."""
    import matplotlib.pyplot as plt

    lines: dict[str, list[tuple[int, float]]] = {}
    flat = []
    for r in group.rows:
        if not sampled(r.first):
            continue
        if r.batch_size is not None and not (isinstance(r.first.kv, KvBatches) and r.first.kv.capacity):
            lines.setdefault(f"{r.first.stack} {r.first.mode}", []).append(
                (r.batch_size, r.stat("output_tokens_per_s").mean)
            )
        elif not isinstance(r.first.kv, KvBatches):
            flat.append(r)
    lines = {name: sorted(points) for name, points in lines.items() if len({p[0] for p in points}) >= 2}
    if not lines:
        return None  # a line needs two batch sizes
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, points in lines.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=name)
    for r in flat:
        ax.axhline(
            r.stat("output_tokens_per_s").mean, ls="--", color=_color(r), label=f"{r.label} ({r.first.scenario})"
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size (padded batches)")
    ax.set_ylabel("output tokens / s")
    ax.legend(fontsize=8)
    return "Throughput vs batch size", data_uri(fig)


def latency(group: Group):
    import matplotlib.pyplot as plt

    rows = group.rows
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    for i, r in enumerate(rows):
        lat = r.first.metrics.latency_ms
        ax.plot([lat.p50, lat.p90, lat.p99, lat.max], [i] * 4, "-", color="#999", lw=1)
        for x, marker, name in (
            (lat.p50, "o", "p50"),
            (lat.p90, "s", "p90"),
            (lat.p99, "^", "p99"),
            (lat.max, "x", "max"),
        ):
            ax.plot(x, i, marker, color="#4c72b0", label=name if i == 0 else None)
    ax.set_yticks(range(len(rows)), [r.label for r in rows])
    ax.set_xscale("log")
    ax.set_xlabel("request latency from submission, ms (log scale)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, ncol=4)
    return "Latency distribution (p50, p90, p99, max)", data_uri(fig)


PHASE_COLOURS = {"load": "#e8e8e8", "warmup": "#fff2cc", "capacity search": "#f4cccc", "run": "#d9ead3"}
TIMED = ("capacity search", "run")  # what the chart shows; load and warm-up are said in the title


def memory_timelines(group: Group):
    """Memory during the timed run of each scenario (and the capacity search before it, for `batch_size:
    max`): a long load or warm-up would squeeze the run into a sliver, so their length is told instead."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = [r for r in group.rows if r.first.memory and r.first.memory.timeline][:8]
    if not rows:
        return None
    height = 1.6 * len(rows) + 0.6
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, height), squeeze=False)
    shown: set[str] = set()
    for ax, r in zip(axes[:, 0], rows):
        mem = r.first.memory
        readings = [s for s in mem.timeline if s.device_used_mib is not None or s.host_rss_mib is not None]
        timed = [p for p in mem.phases if p.name in TIMED]
        end_of = lambda p: p.end_s if p.end_s is not None else (readings[-1].t_s if readings else p.start_s)  # noqa: E731
        lo = min((p.start_s for p in timed), default=readings[0].t_s if readings else 0.0)
        hi = max((end_of(p) for p in timed), default=readings[-1].t_s if readings else 1.0)
        pad = max(hi - lo, 1e-3) * 0.03
        window = [s for s in readings if lo - pad <= s.t_s <= hi + pad] or readings
        t = [s.t_s for s in window]
        gpu = [s.process_used_mib if s.process_used_mib is not None else s.device_used_mib for s in window]
        if any(v is not None for v in gpu):
            values = [v or 0 for v in gpu]
            ax.plot(t, values, color="#4c72b0", label="GPU used MiB (NVML)")
        else:
            values = [s.host_rss_mib or 0 for s in window]
            ax.plot(t, values, color="#55a868", label="host RSS MiB (no GPU)")
        for p in mem.phases:
            if p.name in TIMED:
                ax.axvspan(max(p.start_s, lo - pad), min(end_of(p), hi + pad), color=PHASE_COLOURS[p.name], zorder=0)
                shown.add(p.name)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(0, max(values, default=0) * 1.15 or 1)  # a flat line at its peak stays off the frame
        before = sum(end_of(p) - p.start_s for p in mem.phases if p.name in ("load", "warmup"))
        ax.set_title(
            f"{r.label} ({r.first.scenario})" + (f" — load and warm-up before it: {before:,.1f} s" if before else ""),
            fontsize=9,
            loc="left",
        )
        ax.set_ylabel("MiB")
    axes[-1, 0].set_xlabel("seconds since the scenario started")
    handles = [Patch(color=PHASE_COLOURS[name], label=name) for name in TIMED if name in shown]
    line = axes[0, 0].get_lines()[0]
    labels = [line.get_label(), *(h.get_label() for h in handles)]
    # One legend above the charts, in room kept for it: no label sits on the data.
    fig.legend([line, *handles], labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False)
    fig.subplots_adjust(hspace=0.7, top=1 - 0.45 / height)
    return "Memory over the timed run", data_uri(fig)


def kv(group: Group):
    import matplotlib.pyplot as plt

    rows = [r for r in group.rows if r.first.kv is not None and r.first.kv.utilization is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    parts = [
        ("holding tokens", "#55a868"),
        ("prompt padding", "#c44e52"),
        ("finished rows", "#dd8452"),
        ("reserved, never reached", "#8172b2"),
        ("allocated blocks' empty slots", "#937860"),
    ]
    for i, r in enumerate(rows):
        k = r.first.kv
        total = k.reserved_tokens_total if isinstance(k, KvBatches) else None
        if total:
            gaps = (k.live_tokens_total, k.prompt_padding_tokens_total, k.finished_row_tokens_total)
            shares = [(x or 0) / total for x in (*gaps, k.unreached_tokens_total)] + [0]
        else:
            shares = [k.utilization, 0, 0, 0, 1 - k.utilization]
        left = 0.0
        for share, (name, color) in zip(shares, parts):
            ax.barh(i, share * 100, left=left, color=color, label=name if i == 0 or share else None)
            left += share * 100
    ax.set_yticks(range(len(rows)), [r.label for r in rows])
    ax.set_xlabel("% of the KV memory in use (padded batches: the cache tensors; a block pool: the allocated blocks)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    ax.invert_yaxis()
    return "KV memory: reserved vs holding tokens", data_uri(fig)


def figures(group: Group) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    made = [f(group) for f in (throughput, throughput_vs_batch, latency, kv, memory_timelines)] if group.rows else []
    return [m for m in made if m is not None]
