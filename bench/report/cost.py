"""What a token costs: from a price per GPU-hour (the user's, no default), the cost per million output
tokens of each scenario's best run and of each serving load, from the measured time and the GPUs held; the
energy per output token beside it where the GPUs' counters gave it."""

from __future__ import annotations

from bench.report.collect import Collection, on_card, sampled
from bench.report.serving import CLIENT_BOUND
from bench.report.tables import Table, fmt, sig

_HEADERS = [
    "workload / load",
    "stack / mode (scenario)",
    "GPUs",
    "output tok/s",
    "cost / M output tokens",
    "J / output token",
]


def per_million(price: float, gpus: int, seconds: float, tokens: float) -> float | None:
    """The cost of `tokens` output tokens made in `seconds` on `gpus` GPUs, per million."""
    return price * gpus * seconds / 3600 / tokens * 1e6 if gpus and tokens > 0 and seconds > 0 else None


def _row(where: str, what: str, price: float, energy, seconds: float, tokens: float, tps: float) -> list[str]:
    """One row: the GPUs held (from the energy record), the cost of a million output tokens, the joules."""
    gpus = energy.gpus if energy is not None else None
    cost = per_million(price, gpus or 0, seconds, tokens)
    why = "a CPU run: no GPU-hours" if gpus == 0 else "GPUs held not recorded"
    joules = energy.per_output_token_j if energy is not None else None
    return [
        where,
        what,
        fmt(gpus, 0) if gpus is not None else "—",
        fmt(tps, 0),
        sig(cost) if cost else why,
        sig(joules),
    ]


def cost_table(c: Collection, price: float | None) -> Table | None:
    """One row per (workload, stack/mode) and per serving load; None without a price."""
    if price is None:
        return None
    rows = []
    card = on_card(c.groups)
    for g in c.groups:
        where = g.workload.name + card(g)
        for row in (r for r in g.rows if sampled(r.first)):
            tps = row.stat("output_tokens_per_s").mean  # tokens a second: a second's cost over them
            rows.append(_row(where, f"{row.label} ({row.first.scenario})", price, row.first.energy, 1.0, tps, tps))
    for served in c.serving:
        for load in served.loads:
            tokens = sum(x or 0 for x in load.records.output_tokens)
            what = f"{served.stack} server ({served.scenario})"
            row = _row(f"{served.workload}, {load.load}", what, price, load.energy, load.duration_s, tokens,
                       load.output_tokens_per_s)  # fmt: skip
            if "output_tokens_per_s" in load.unmeasured:  # the client's pace, not the server's: no figure
                row[3:] = [CLIENT_BOUND] * 3
            rows.append(row)
    note = (
        f"At {price:g} per GPU-hour (the price given): the GPUs a run held for the time it took, over the output "
        "tokens it made; a serving load over its whole duration. Energy from the GPUs' NVML counters over the "
        "timed run (or load). A load the client could not keep up with measured the client: no figure."
    )
    return Table("What a token costs", _HEADERS, rows, note) if rows else None
