"""The answer in one picture, for the report's first section: per stack at its best (and at each memory
budget both ran at), the KV memory it set aside with the part holding tokens, and its output throughput."""

from __future__ import annotations

from bench.report.collect import Group
from bench.report.headline import compared, sides
from bench.report.plots import data_uri, stack_color


def answer(group: Group):
    """The answer in one picture, for each pair the headline compares: per stack at its best (and at each
    memory budget both ran at), the KV memory it set aside with the part holding tokens at its busiest
    moment, and the output throughput with its 95 % interval."""
    import matplotlib.pyplot as plt

    shown = [x for base, engine in compared() for x in sides(group, base, engine)]
    if not shown:
        return None
    fig, (mem, tps) = plt.subplots(1, 2, figsize=(11, 0.5 * len(shown) + 1.4), sharey=True)
    largest = max((side.reserved or 0 for _, side in shown), default=0)
    unit, size = ("GiB", 2**30) if largest >= 2**30 / 10 else ("MiB", 2**20)  # never a bar too thin to see
    for i, (_, side) in enumerate(shown):
        color = stack_color(side.row.first.stack)
        if side.reserved:
            mem.barh(i, side.reserved / size, color=color, alpha=0.3)
            mem.barh(i, side.reserved * (side.set_aside or 0) / size, color=color)
            mem.text(side.reserved / size, i, f" {side.set_aside:.0%} holding tokens", va="center", fontsize=8)
        stat = side.row.stat("output_tokens_per_s")
        tps.barh(i, stat.mean, xerr=stat.ci95 or 0, color=color)
        tps.text(stat.mean + (stat.ci95 or 0), i, f" {stat.mean:,.0f}", va="center", fontsize=8)
    mem.set_yticks(range(len(shown)), [title for title, _ in shown])
    mem.set_xlabel(f"KV memory, {unit}: set aside (pale), holding tokens (solid)")
    tps.set_xlabel("output tokens / s (± 95 % interval where repeated)")
    mem.set_xlim(0, largest / size * 1.5 or 1)  # room for the labels
    tps.set_xlim(left=0)
    tps.margins(x=0.2)
    mem.invert_yaxis()
    return f"The answer: {group.model}, workload {group.workload.name}", data_uri(fig)
