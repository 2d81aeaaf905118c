"""`pagedbench serve` results in the report: one row per load of each server, the figures its result
file holds (computed by the load generator), failed requests shown beside the completed ones."""

from __future__ import annotations

from bench.report.collect import Collection, is_number
from bench.report.tables import Table, fmt, stack_label
from bench.serving import SCHEMA

_NUMBERS = ("requests", "completed", "failed", "achieved_rps", "output_tokens_per_s", "duration_s")


def serving_file(data) -> dict | None:
    """A serving result (a file's JSON) with the fields the report reads, or None."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("loads"), list):
        return None
    if not all(isinstance(data.get(k), str) for k in ("stack", "scenario", "status")):
        return None
    for load in data["loads"]:
        if not isinstance(load, dict) or not isinstance(load.get("load"), str):
            return None
        if not all(is_number(load.get(k)) for k in _NUMBERS):
            return None
    return data


def _pair(p: dict | None) -> str:
    if not isinstance(p, dict) or not (is_number(p.get("p50")) and is_number(p.get("p99"))):
        return "—"
    return f"{p['p50']:,.0f} / {p['p99']:,.0f}"


def peak_memory(data: dict) -> float | None:
    """The server's peak memory over the sweep: its processes' GPU memory, else the device's, else host RSS."""
    memory = data.get("memory")
    if not isinstance(memory, dict):
        return None
    for key in ("peak_process_used_mib", "peak_device_used_mib", "peak_host_rss_mib"):
        if is_number(memory.get(key)):
            return memory[key]
    return None


def serving_table(c: Collection) -> Table | None:
    if not c.serving:
        return None
    rows = []
    for data in c.serving:
        peak = peak_memory(data)
        for load in data["loads"]:
            good = load.get("goodput_rps")
            rows.append(
                [
                    f"{stack_label(data['stack'])} ({data.get('server', '?')})",
                    data["scenario"],
                    load["load"],
                    f"{load['completed']:,} / {load['requests']:,}",
                    f"{load['failed']:,} ⚠" if load["failed"] else "0",
                    fmt(load["achieved_rps"], 2),
                    fmt(load["output_tokens_per_s"], 0),
                    _pair(load.get("ttft_ms")),
                    _pair(load.get("tpot_ms")),
                    _pair(load.get("e2e_ms")),
                    fmt(good, 2) if is_number(good) else "—",
                    fmt(peak, 0),
                ]
            )
    return Table(
        "Online serving",
        [
            "server",
            "scenario",
            "load",
            "completed",
            "failed",
            "achieved req/s",
            "output tok/s",
            "TTFT p50 / p99 ms",
            "TPOT p50 / p99 ms",
            "E2E p50 / p99 ms",
            "goodput req/s",
            "server peak MiB",
        ],
        rows,
        "TTFT: send to the first streamed chunk. TPOT: (E2E - TTFT) / (output tokens - 1), per request. E2E: send "
        "to the last byte. Goodput: completed requests per second that met every SLO the run was given. Figures "
        "are over completed requests; failed ones are counted, with their reasons in the result file. Server peak: "
        "over the whole sweep, its processes' GPU memory (NVML), else the device's, else its host RSS.",
    )
