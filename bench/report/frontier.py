"""The throughput-latency frontier of serving sweeps: each load as a point (output tokens per second per
GPU against p99 TPOT, and against p99 TTFT), the loads no other load beats on both joined, the SLO lines
drawn; and in one sentence what each server delivered within the SLOs. A load whose figures the client
could not measure (client-bound, not streamed) is no point."""

from __future__ import annotations

from dataclasses import dataclass

from bench.report.plots import data_uri, stack_color
from bench.report.serving import serving_sets
from bench.report.tables import stack_label
from bench.results.serving import LoadResult, ServingResult

AXES = (("tpot_ms", "tpot_ms_p99", "p99 TPOT ms"), ("ttft_ms", "ttft_ms_p99", "p99 TTFT ms"))


@dataclass(frozen=True)
class Point:
    load: LoadResult
    per_gpu: float  # output tokens / s per GPU the server held (per server on a CPU)
    latency: float  # the p99 of the axis's figure, ms


def _gpus(load: LoadResult) -> int:
    return load.energy.gpus if load.energy is not None and load.energy.gpus else 1


def points(data: ServingResult, figure: str) -> list[Point]:
    found = []
    for load in data.loads:
        p = getattr(load, figure)
        if p is None or not load.completed or (load.client and load.client.bound) or figure in load.unmeasured:
            continue
        found.append(Point(load, load.output_tokens_per_s / _gpus(load), p.p99))
    return found


def pareto(found: list[Point]) -> list[Point]:
    """The points no other beats on both throughput (higher) and latency (lower), lowest latency first."""
    front, best = [], -1.0
    for p in sorted(found, key=lambda p: (p.latency, -p.per_gpu)):
        if p.per_gpu > best:
            front.append(p)
            best = p.per_gpu
    return front


def frontier_chart(serving: list[ServingResult]):
    import matplotlib.pyplot as plt

    drawn = [d for d in serving if any(points(d, f) for f, _, _ in AXES)]
    if not drawn:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (figure, slo, name) in zip(axes, AXES):
        for data in drawn:
            found, color = points(data, figure), stack_color(data.stack)
            label = f"{stack_label(data.stack)} {data.scenario}"
            ax.scatter([p.latency for p in found], [p.per_gpu for p in found], color=color, alpha=0.5)
            front = pareto(found)
            ax.plot(
                [p.latency for p in front], [p.per_gpu for p in front], "o-", color=color, label=f"{label} frontier"
            )
            for p in found:
                if p.load.goodput_rps is not None:
                    ax.annotate(f"{p.load.goodput_rps:.1f}", (p.latency, p.per_gpu), fontsize=6, color=color,
                                xytext=(3, 3), textcoords="offset points")  # fmt: skip
        limits = {d.slos[slo] for d in drawn if slo in d.slos}
        for limit in limits:
            ax.axvline(limit, linestyle=":", color="#c44e52", label=f"SLO {limit:g} ms")
        ax.set_xlabel(f"{name} (lower is better)")
        ax.set_ylabel("output tokens / s per GPU (higher is better)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    fig.suptitle("Each load a point, its goodput (req/s within the SLOs) beside it", fontsize=9)
    return "Throughput against latency: the frontier", data_uri(fig)


def within_slos(serving: list[ServingResult]) -> list[str]:
    """One sentence per model and kind of device: the most each server delivered within its SLOs (goodput),
    and at which load."""
    return [x for where, these in serving_sets(serving) if (x := _within_slos(where, these))]


def _within_slos(where: str, serving: list[ServingResult]) -> str | None:
    said = []
    for data in serving:
        loads = [x for x in data.loads if x.goodput_rps is not None and not (x.client and x.client.bound)]
        if not data.slos or not loads:
            continue
        best = max(loads, key=lambda x: x.goodput_rps)
        per_gpu = best.output_tokens_per_s / _gpus(best)
        said.append(
            f"{stack_label(data.stack)} ({data.scenario}) "
            f"{best.goodput_rps:,.1f} req/s within them at {best.load} ({per_gpu:,.0f} output tok/s per GPU)"
        )
    if not said:
        return None
    slos = {k: v for d in serving for k, v in d.slos.items()}
    limits = ", ".join(f"{k.replace('_ms_p99', '').upper()} p99 ≤ {v:g} ms" for k, v in slos.items())
    return f"Served within the SLOs ({limits}), the most each server delivered, {where}: " + "; ".join(said) + "."
