"""Charts of `pagedbench serve` results for the HTML report: latency and goodput against the achieved load,
and the server's KV use against the load, one line per server."""

from __future__ import annotations

from bench.report.plots import data_uri, stack_color
from bench.report.serving import serving_sets
from bench.results.serving import LoadResult, ServingResult


def _open_loop(data: ServingResult) -> list[LoadResult]:
    """The rate loads, lowest offered first (a closed loop has no offered rate to put on the axis); a
    load the client could not keep up with measured the client, and is left out."""
    loads = [x for x in data.loads if x.offered_rps and x.completed and not (x.client and x.client.bound)]
    return sorted(loads, key=lambda x: x.offered_rps)


def latency_vs_load(serving: list[ServingResult]):
    import matplotlib.pyplot as plt

    fig, (ttft, tpot) = plt.subplots(1, 2, figsize=(11, 3.8))
    for data in serving:
        loads = _open_loop(data)
        if not loads:
            continue
        x = [ld.achieved_rps for ld in loads]
        label, color = f"{data.stack} {data.scenario}", stack_color(data.stack)
        for ax, key in ((ttft, "ttft_ms"), (tpot, "tpot_ms")):
            p50 = [getattr(ld, key).p50 if getattr(ld, key) else None for ld in loads]
            p99 = [getattr(ld, key).p99 if getattr(ld, key) else None for ld in loads]
            ax.plot(x, p50, "o-", color=color, label=f"{label} p50")
            ax.plot(x, p99, "s--", color=color, alpha=0.6, label=f"{label} p99")
    for ax, name in ((ttft, "TTFT ms"), (tpot, "TPOT ms")):
        ax.set_xlabel("achieved requests / s")
        ax.set_ylabel(f"{name} (lower is better)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    return "Latency against load (open-loop rates)", data_uri(fig)


def goodput_and_kv(serving: list[ServingResult]):
    """Goodput against the offered rate (left), and the server's mean KV use during each load (right)."""
    import matplotlib.pyplot as plt

    fig, (good, kv) = plt.subplots(1, 2, figsize=(11, 3.8))
    for data in serving:
        loads, color = _open_loop(data), stack_color(data.stack)
        label = f"{data.stack} {data.scenario}"
        if not loads:
            continue
        offered = [ld.offered_rps for ld in loads]
        good.plot(offered, [ld.achieved_rps for ld in loads], "o-", color=color, label=f"{label} achieved")
        if all(ld.goodput_rps is not None for ld in loads):
            good.plot(offered, [ld.goodput_rps for ld in loads], "s--", color=color, label=f"{label} goodput")
        use = [_mean_kv(data, ld) for ld in loads]
        if any(u is not None for u in use):
            kv.plot(offered, [100 * u if u is not None else None for u in use], "o-", color=color, label=label)
    good.plot([0, max(1, good.get_xlim()[1])], [0, max(1, good.get_xlim()[1])], ":", color="#999", label="offered")
    good.set_xlabel("offered requests / s")
    good.set_ylabel("requests / s")
    kv.set_xlabel("offered requests / s")
    kv.set_ylabel("mean KV cache use during the load, %")
    for ax in (good, kv):
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if not kv.get_legend_handles_labels()[0]:
        kv.text(0.5, 0.5, "no server reported its KV use", ha="center", va="center", transform=kv.transAxes)
    return "Goodput and KV use against load", data_uri(fig)


def _mean_kv(data: ServingResult, load: LoadResult) -> float | None:
    start, end = load.started_s, load.started_s + load.duration_s
    values = [s["kv_usage"] for s in data.timeline if "kv_usage" in s and start <= s.get("t_s", -1.0) <= end]
    return sum(values) / len(values) if values else None


def serving_figures(serving: list[ServingResult]) -> list[tuple[str, str]]:
    """The charts of each model and kind of device, titled with them."""
    from bench.report.frontier import frontier_chart

    charts = []
    for where, these in serving_sets(serving):
        drawn = [frontier_chart(these)]
        if any(_open_loop(d) for d in these):
            drawn += [latency_vs_load(these), goodput_and_kv(these)]
        charts += [(f"{title} — {where}", uri) for title, uri in filter(None, drawn)]
    return charts
