"""`pagedbench serve` results in the report: one row per load of each server, the figures its result
file holds (computed by the load generator), failed requests shown beside the completed ones, and a
figure that measured nothing (a load the client could not keep up with, a server that did not stream)
marked with its reason instead of a number."""

from __future__ import annotations

from bench.report.collect import Collection
from bench.report.tables import Table, fmt, sig, stack_label
from bench.results.schema import Percentiles
from bench.results.serving import LoadResult, ServingResult

CLIENT_BOUND = "client-bound"
NOT_STREAMED = "not streamed"


def _pair(load: LoadResult, key: str) -> str:
    if key in load.unmeasured:
        return CLIENT_BOUND if load.unmeasured[key].startswith(CLIENT_BOUND) else NOT_STREAMED
    p: Percentiles | None = getattr(load, key)
    return "—" if p is None else f"{sig(p.p50)} / {sig(p.p99)}"


def _rate(load: LoadResult, key: str, digits: int) -> str:
    if key in load.unmeasured:
        return CLIENT_BOUND if load.unmeasured[key].startswith(CLIENT_BOUND) else NOT_STREAMED
    value = getattr(load, key)
    return "—" if value is None else fmt(value, digits)


def serving_sets(serving: list[ServingResult]) -> list[tuple[str, list[ServingResult]]]:
    """The serving results by model and kind of device, each set named "MODEL on DEVICE": servers are set
    side by side (tables, charts, the answer's sentence) only within one set."""
    sets: dict[str, list[ServingResult]] = {}
    for data in serving:
        env = data.environment
        device = "an unrecorded device" if env is None else env.gpu.name if env.gpu else "CPU"
        sets.setdefault(f"{data.model} on {device}", []).append(data)
    return list(sets.items())


def peak_memory(data: ServingResult) -> float | None:
    """The server's peak memory over the sweep: its processes' GPU memory, else the device's, else host RSS."""
    m = data.memory
    if m is None:
        return None
    return m.peak_process_used_mib or m.peak_device_used_mib or m.peak_host_rss_mib


def serve_crosscheck_table(c: Collection) -> Table | None:
    """scripts/serve_crosscheck.py files: each load's figures by PagedBench's client and by `vllm bench
    serve` on one server, their difference and verdict, and the server's own mean where it was read."""
    if not c.serve_crosschecks:
        return None
    rows = []
    for x in c.serve_crosschecks:
        for load in x.loads:
            for row in load.rows:
                server = [row.server_under_pagedbench, row.server_under_vllm_bench_serve]
                rows.append(
                    [
                        f"{x.server}, {x.scenario}",
                        load.label,
                        row.figure,
                        _runs(row.pagedbench, row.pagedbench_runs),
                        _runs(row.vllm_bench_serve, row.vllm_bench_serve_runs),
                        f"{row.difference:+.1%}" if row.difference is not None else "—",
                        " / ".join(fmt(v, 2) for v in server) if any(v is not None for v in server) else "—",
                        row.judged(x.target),
                    ]
                )
    return Table(
        "Serving client against vllm bench serve",
        [
            "server, scenario",
            "load",
            "figure",
            "PagedBench (each run)",
            "vllm bench serve (each run)",
            "difference",
            "the server's own, under each",
            "verdict",
        ],
        rows,
        "One server, the same prompts, lengths and send times, each client's runs alternating "
        "(scripts/serve_crosscheck.py). Figures are the mean of a client's runs. The server's own: its mean "
        "over the same requests from its own histograms (vLLM's /metrics; the stub's own clock), where it was "
        "read. Verdict: within the target; differs, where every run of one client lies beyond every run of "
        "the other; not told apart, where their runs interleave.",
    )


def _runs(mean: float | None, runs: list[float | None]) -> str:
    shown = fmt(mean, 2)
    if len(runs) > 1:
        shown += " (" + " / ".join(fmt(v, 2) for v in runs) + ")"
    return shown


def serving_tables(c: Collection) -> list[Table]:
    """One "Online serving" table per model and kind of device."""
    return [serving_table(where, serving) for where, serving in serving_sets(c.serving)]


def serving_table(where: str, serving: list[ServingResult]) -> Table:
    rows, notes = [], {}
    for data in serving:
        peak = peak_memory(data)
        for load in data.loads:
            for why in load.unmeasured.values():
                notes.setdefault(why, []).append(f"{data.stack} {load.load}")
            rows.append(
                [
                    f"{stack_label(data.stack)} ({data.server})",
                    data.scenario,
                    load.load,
                    f"{load.completed:,} / {load.requests:,}",
                    f"{load.failed:,} ⚠" if load.failed else "0",
                    _rate(load, "achieved_rps", 2),
                    _rate(load, "output_tokens_per_s", 0),
                    _pair(load, "ttft_ms"),
                    _pair(load, "tpot_ms"),
                    _pair(load, "e2e_ms"),
                    fmt(load.tokens_per_chunk, 2) if load.tokens_per_chunk is not None else "—",
                    _rate(load, "goodput_rps", 2),
                    fmt(peak, 0),
                ]
            )
    why = " ".join(f"Not measured ({', '.join(where)}): {reason}." for reason, where in notes.items())
    return Table(
        f"Online serving: {where}",
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
            "tokens / chunk",
            "goodput req/s",
            "server peak MiB",
        ],
        rows,
        "TTFT: send to the first streamed chunk. TPOT: (E2E - TTFT) / (output tokens - 1), per request. E2E: send "
        "to the last byte. Tokens / chunk: output tokens over the chunks that carried them (1 when the server "
        "streamed token by token). Goodput: completed requests per second that met every SLO the run was given "
        "(a one-token answer has no TPOT and meets a TPOT limit). Figures are over completed requests; failed "
        "ones are counted, with their reasons in the result file. Server peak: over the whole sweep, its "
        "processes' GPU memory (NVML), else the device's, else its host RSS." + (f" {why}" if why else ""),
    )
