"""Charts for the HTML report, as embedded PNG data URIs (the page needs no network and no other file)."""

from __future__ import annotations

import base64
import io

from bench.report.collect import Group

GIB = 2**30


def _uri(fig) -> str:
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
        color=["#4c72b0" if r.first.stack == "hf" else "#dd8452" for r in rows],
    )
    for i, v in enumerate(values):
        ax.text(v.mean, i, f" {v.mean:,.0f}", va="center", fontsize=8)
    ax.set_xlabel("output tokens / s (higher is better)")
    ax.invert_yaxis()
    return "Output throughput per stack and mode", _uri(fig)


def throughput_vs_batch(group: Group):
    import matplotlib.pyplot as plt

    points = sorted(
        (r.first.config.get("batch_size"), r.stat("output_tokens_per_s").mean)
        for r in group.rows
        if r.first.stack == "hf" and r.first.mode == "padded" and isinstance(r.first.config.get("batch_size"), int)
    )
    if len(points) < 2:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label="hf padded")
    for r in group.rows:
        if r.first.stack != "hf":
            ax.axhline(
                r.stat("output_tokens_per_s").mean,
                ls="--",
                color="#dd8452" if r.first.stack == "vllm" else "#55a868",
                label=f"{r.label} ({r.first.scenario})",
            )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("HF batch size")
    ax.set_ylabel("output tokens / s")
    ax.legend(fontsize=8)
    return "Throughput vs batch size", _uri(fig)


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
    return "Latency distribution (p50, p90, p99, max)", _uri(fig)


def memory_timelines(group: Group):
    import matplotlib.pyplot as plt

    rows = [r for r in group.rows if r.first.memory and r.first.memory.timeline][:8]
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.9 * len(rows)), squeeze=False)
    colors = {"load": "#e8e8e8", "warmup": "#fff2cc", "run": "#d9ead3"}
    for ax, r in zip(axes[:, 0], rows):
        mem = r.first.memory
        readings = [s for s in mem.timeline if s.device_used_mib is not None or s.host_rss_mib is not None]
        t = [s.t_s for s in readings] or [0.0]
        gpu = [s.process_used_mib if s.process_used_mib is not None else s.device_used_mib for s in readings]
        if any(v is not None for v in gpu):
            ax.plot(t, [v or 0 for v in gpu], color="#4c72b0", label="GPU used MiB (NVML)")
        else:
            ax.plot(t, [s.host_rss_mib or 0 for s in readings] or [0], color="#55a868", label="host RSS MiB (no GPU)")
        for p in mem.phases:
            if p.name in colors:
                ax.axvspan(p.start_s, p.end_s or t[-1], color=colors[p.name], zorder=0)
                ax.text(p.start_s, ax.get_ylim()[1] * 0.92, p.name, fontsize=7)
        ax.set_title(f"{r.label} ({r.first.scenario})", fontsize=9, loc="left")
        ax.set_ylabel("MiB")
        ax.legend(fontsize=7, loc="lower right")
    axes[-1, 0].set_xlabel("seconds since the scenario started")
    fig.subplots_adjust(hspace=0.6)
    return "Memory over time, with phases", _uri(fig)


def kv(group: Group):
    import matplotlib.pyplot as plt

    rows = [r for r in group.rows if r.first.kv and r.first.kv.get("utilization") is not None]
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
        total = k.get("reserved_tokens_total")
        if total:
            shares = [
                k["live_tokens_total"] / total,
                k["prompt_padding_tokens_total"] / total,
                k["finished_row_tokens_total"] / total,
                k["unreached_tokens_total"] / total,
                0,
            ]
        else:
            shares = [k["utilization"], 0, 0, 0, 1 - k["utilization"]]
        left = 0.0
        for share, (name, color) in zip(shares, parts):
            ax.barh(i, share * 100, left=left, color=color, label=name if i == 0 or share else None)
            left += share * 100
    ax.set_yticks(range(len(rows)), [r.label for r in rows])
    ax.set_xlabel("% of the KV memory in use (HF: the cache tensors; paged stacks: the allocated blocks)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    ax.invert_yaxis()
    return "KV memory: reserved vs holding tokens", _uri(fig)


def figures(group: Group) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    made = [f(group) for f in (throughput, throughput_vs_batch, latency, kv, memory_timelines)] if group.rows else []
    return [m for m in made if m is not None]
