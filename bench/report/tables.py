"""The report's content as data: tables (headers + rows of strings) and summary sentences, all computed
from the results. Markdown and HTML only render these."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.report.collect import CV_FLAG, SHORT_RUN_S, Collection, Group, Row, pick_baseline
from bench.results.sections import KvBatches, KvPool
from bench.stacks import STACKS

GIB = 2**30


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def sig(x: float | None) -> str:
    """Three significant digits, thousands separated: a small real quantity never rounds to 0."""
    if x is None:
        return "—"
    if x == 0 or abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{2 - int(math.floor(math.log10(abs(x))))}f}"


def with_ci(row: Row, metric: str, digits: int = 1) -> str:
    s = row.stat(metric)
    text = fmt(s.mean, digits)
    if s.ci95 is not None:
        text += f" ± {fmt(s.ci95, digits)}"
    if s.noisy:
        text += f" ⚠ CV {s.cv:.0%}"
    elif s.cv is not None:
        text += f" (CV {s.cv:.1%})"
    return text


def pct(x: float | None) -> str:
    """A share as a percentage, with enough digits that a small share does not read as zero."""
    if x is None:
        return "—"
    return f"{100 * x:.1f} %" if x == 0 or abs(x) >= 0.01 else f"{100 * x:.2g} %"


def performance_table(group: Group, baseline_spec: str) -> Table:
    base = pick_baseline(group, baseline_spec)
    base_tps = base.stat("output_tokens_per_s").mean if base else None
    rows = []
    for row in group.rows:
        r = row.first
        m = r.metrics
        tps = row.stat("output_tokens_per_s").mean
        rows.append(
            [
                row.label,
                r.scenario,
                str(len(row.results)),
                with_ci(row, "output_tokens_per_s"),
                with_ci(row, "requests_per_s", 2),
                fmt(m.latency_ms.p50, 0),
                fmt(m.latency_ms.p90, 0),
                fmt(m.latency_ms.p99, 0),
                fmt(m.ttft_ms.p50 if m.ttft_ms else None, 0),
                fmt(m.tpot_ms.p50 if m.tpot_ms else None, 2),
                fmt(row.stat("peak_memory_mib").mean, 0),
                fmt(row.stat("elapsed_s").mean, 2),
                f"{tps / base_tps:.2f}x" if base_tps else "—",
                pct(m.roofline.fraction_of_roofline if m.roofline else None),
            ]
        )
    return Table(
        "Throughput and latency",
        [
            "stack / mode",
            "scenario",
            "runs",
            "output tok/s",
            "req/s",
            "latency p50 ms",
            "p90 ms",
            "p99 ms",
            "TTFT p50 ms",
            "TPOT p50 ms",
            "peak memory MiB",
            "elapsed s",
            f"vs {base.label if base else '—'}",
            "of roofline",
        ],
        rows,
        "Latencies from the start of the timed run (all requests submitted at once). Peak memory: NVML "
        "per-process where visible, else device-wide, else host RSS (CPU). ± is a 95 % confidence interval "
        "over repeats; ⚠ marks a coefficient of variation over 5 %. "
        "Of roofline: the time the decode bytes (weights + KV read) need at the copy bandwidth measured in the "
        "run, over the measured time.",
    )


def kv_table(group: Group) -> Table | None:
    rows = []
    for row in group.rows:
        kv = row.first.kv
        if kv is None:
            continue
        padded, pool = isinstance(kv, KvBatches), isinstance(kv, KvPool)
        reserved = kv.reserved_tokens_total if padded else None
        share = lambda n: n / reserved if reserved and n is not None else None  # noqa: E731
        rows.append(
            [
                row.label,
                fmt(kv.reserved_bytes_peak / GIB if kv.reserved_bytes_peak else None, 2),
                pct(kv.utilization),
                pct(share(kv.prompt_padding_tokens_total) if padded else None),
                pct(share(kv.finished_row_tokens_total) if padded else None),
                pct(share(kv.unreached_tokens_total) if padded else None),
                pct(kv.peak_usage if pool else None),
                fmt(kv.peak_running if pool else None, 0),
            ]
        )
    if not rows:
        return None
    return Table(
        "KV memory: reserved vs holding tokens",
        [
            "stack / mode",
            "KV reserved GiB (peak)",
            "holding tokens",
            "prompt padding",
            "finished rows",
            "reserved, never reached",
            "pool used at peak",
            "most running",
        ],
        rows,
        "Padded batches: bytes read from the cache object; its gap split by cause. A block pool: the pool from "
        "the engine, its use sampled during the run, and the fill of the blocks in use (computed from lengths).",
    )


def _sum(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def _time_row(title: str, results: list) -> list[str]:
    t = [r.timing for r in results]
    starts = [x for x in t if x.load_s is not None and not x.engine_reused]
    caches = sorted({x.compile_cache for x in starts if x.compile_cache})
    # The user's wait: the process's start-up and the run's setup, then every scenario from load to result.
    wall = _sum([_sum(x.wall_s for x in t), _sum(x.setup_s for x in t), _sum(x.process_start_s for x in t)])
    timed = _sum(x.timed_s for x in t)
    load = fmt(_sum(x.load_s for x in starts), 1)
    if starts:
        load += (
            f" ({len(starts)} start{'s' if len(starts) > 1 else ''}" + (f", {'/'.join(caches)}" if caches else "") + ")"
        )
    return [
        title,
        str(len(results)),
        fmt(_sum(x.process_start_s for x in t), 1),
        fmt(_sum(x.setup_s for x in t), 1),
        load,
        fmt(_sum(x.warmup_s for x in t), 1),
        fmt(timed, 1),
        fmt(wall, 1),
        f"{wall / timed:.1f}" if wall and timed and all(x.wall_s is not None for x in t) else "—",
    ]


def time_table(collection: Collection) -> Table | None:
    """Time to answer: where each run's wall time went, per stack and for each suite, apart from the
    timed figures (which exclude all of it but the timed run)."""
    runs: dict[tuple[str, str, str], list] = {}
    for r in collection.results:
        runs.setdefault((r.suite, r.run_id, r.stack), []).append(r)
    if not any(r.timing.wall_s is not None for r in collection.results):
        return None  # results written before wall times were recorded
    rows = [_time_row(f"{suite}: {stack_label(stack)} (run {run})", rs) for (suite, run, stack), rs in runs.items()]
    for suite in dict.fromkeys(k[0] for k in runs):
        every = [r for k, rs in runs.items() if k[0] == suite for r in rs]
        if len({k for k in runs if k[0] == suite}) > 1:
            rows.append(_time_row(f"{suite}: all of it", every))
    return Table(
        "Time to answer",
        [
            "suite: stack (run)",
            "scenarios",
            "start-up s",
            "setup s",
            "load / engine start s",
            "warm-up s",
            "timed s",
            "wall s",
            "wall ÷ timed",
        ],
        rows,
        "Start-up: from the process's start to the run's (the interpreter, imports). "
        "Setup: building or fetching the model, reading the GPU and measuring its bandwidth, once per run. "
        "Starts: engines started (cold: the compile cache was filled by the start; warm: it held what the start "
        "needed); scenarios sharing an engine start it once. Wall: start-up, setup and every scenario from load to "
        "result, a capacity search (`batch_size: max`) included.",
    )


def breakdown_table(group: Group) -> Table | None:
    keys = [
        "process_used",
        "weights",
        "kv_reserved",
        "kv_live",
        "activations",
        "allocator_slack",
        "runtime_overhead",
        "other",
    ]
    rows = []
    for row in group.rows:
        b = row.first.memory.breakdown if row.first.memory else None
        if b:
            rows.append([row.label] + [fmt(getattr(b, k).mib, 0) if getattr(b, k) else "—" for k in keys])
    if not rows:
        return None
    return Table(
        "GPU memory breakdown (MiB)",
        ["stack / mode"] + [k.replace("_", " ") for k in keys],
        rows,
        "Each entry says in the result file whether it was read or computed. Allocator slack: what torch's "
        "caching allocator held beyond its tensors at their peak (torch peak reserved - peak allocated).",
    )


def stack_label(stack: str) -> str:
    """How the report names a stack ("HF", "vLLM"); a stack this PagedBench does not know, by its name."""
    return STACKS[stack].label if stack in STACKS else stack


def capacity_sentences(group: Group) -> list[str]:
    out = []
    for row in group.rows:
        r, kv = row.first, row.first.kv
        budget = f" = {r.config.memory_budget_gib:g} GiB" if r.config.memory_budget_gib else ""
        if isinstance(kv, KvBatches) and kv.capacity is not None:
            cap = kv.capacity
            bound = "memory" if cap.first_failing_batch else cap.bounded_by
            out.append(
                f"{r.scenario}: the largest {stack_label(r.stack)} {r.mode} batch that completed was {cap.max_batch} "
                f"(bounded by {bound}; memory fraction {cap.memory_fraction}{budget}), {len(cap.probes)} probes."
            )
        if isinstance(kv, KvPool) and kv.peak_running is not None:
            within = f" within a memory budget of {r.config.memory_budget_gib:g} GiB" if budget else ""
            if not within and kv.reserved_bytes_peak:
                within = f" in a KV pool of {kv.reserved_bytes_peak / GIB:,.1f} GiB"
            out.append(
                f"{r.scenario}: {stack_label(r.stack)} kept up to {kv.peak_running:.0f} sequences running at once"
                f"{within} "
                f"({r.metrics.output_tokens_per_s:,.0f} output tok/s)."
            )
    return out


def summary(group: Group, baseline_spec: str) -> list[str]:
    """Sentences computed from the numbers; no claim is written in advance."""
    lines: list[str] = []
    if group.rows:
        by_tps = sorted(group.rows, key=lambda row: row.stat("output_tokens_per_s").mean, reverse=True)
        top, low = by_tps[0], by_tps[-1]
        t_top, t_low = top.stat("output_tokens_per_s").mean, low.stat("output_tokens_per_s").mean
        base = pick_baseline(group, baseline_spec)
        lines.append(
            f"Highest output throughput: {top.label} ({top.first.scenario}) at {t_top:,.0f} tok/s"
            + (f", {t_top / t_low:.1f}x the lowest, {low.label} at {t_low:,.0f} tok/s." if top is not low else ".")
        )
        if base is not None and base is not top:
            lines.append(f"Against the baseline {base.label}: {t_top / base.stat('output_tokens_per_s').mean:.1f}x.")
        with_kv = [
            (row, row.first.kv.utilization)
            for row in group.rows
            if row.first.kv is not None and row.first.kv.utilization is not None
        ]
        if len(with_kv) > 1:
            lo = min(with_kv, key=lambda x: x[1])
            hi = max(with_kv, key=lambda x: x[1])
            lines.append(
                f"KV memory holding tokens ranged from {lo[1]:.1%} ({lo[0].label}) to {hi[1]:.1%} ({hi[0].label})."
            )
        for row in group.rows:
            kv = row.first.kv
            if isinstance(kv, KvPool) and kv.prefix_hit_rate is not None:
                lines.append(
                    f"{row.label} ({row.first.scenario}) found {kv.prefix_cache_hits:,.0f} of the "
                    f"{kv.prefix_cache_queries:,.0f} prompt tokens it looked up in its prefix cache "
                    f"({pct(kv.prefix_hit_rate)}): their KV was computed and held once."
                )
            if isinstance(kv, KvPool) and kv.peak_usage is not None and kv.reserved_bytes_peak:
                lines.append(
                    f"{row.label} reserved {kv.reserved_bytes_peak / GIB:,.1f} GiB of KV pool and "
                    f"used at most {pct(kv.peak_usage)} of it during this workload."
                )
        # Each warning once, with the rows it applies to.
        short = [
            f"{row.label} ({row.first.scenario}, {row.stat('elapsed_s').mean:.1f} s)"
            for row in group.rows
            if row.stat("elapsed_s").mean < SHORT_RUN_S
        ]
        if short:
            lines.append(
                f"Timed runs under {SHORT_RUN_S:.0f} s, whose figures carry start-up and sampling noise (use a "
                f"larger workload to confirm them): {', '.join(short)}."
            )
        noisy = [
            f"{row.label} ({row.stat('output_tokens_per_s').cv:.0%} over {row.stat('output_tokens_per_s').n})"
            for row in group.rows
            if row.stat("output_tokens_per_s").noisy
        ]
        if noisy:
            lines.append(f"Throughput varied by more than {CV_FLAG:.0%} (CV) over repeats: {', '.join(noisy)}.")
    lines += capacity_sentences(group)
    for r in group.failed:
        reason = (r.error or "").splitlines()[0][:160]
        lines.append(f"{r.stack} {r.scenario} {r.status}: {reason}")
    return lines


def _packages(r) -> str:
    """The versions of the stack's own distributions that the result recorded, e.g. "torch 2.11.0, vllm 0.26.0"."""
    names = STACKS[r.stack].packages if r.stack in STACKS else tuple(r.environment.packages)
    found = [f"{n} {r.environment.packages[n]}" for n in names if r.environment.packages.get(n)]
    return ", ".join(found) or "—"


def environment_table(collection: Collection) -> Table | None:
    """What each stack ran on, as its offline and serving results recorded it; none where no file did."""
    seen: dict[tuple, list[str]] = {}
    for r in [*collection.results, *(s for s in collection.serving if s.environment is not None)]:
        env, gpu = r.environment, r.environment.gpu
        key = (
            gpu.name if gpu else f"CPU: {env.cpu}",
            (gpu.driver if gpu else None) or "—",
            env.torch_cuda or "—",
            _packages(r),
            env.image or "—",
            (env.git.sha or "—")[:12] + (" (dirty)" if env.git.dirty else ""),
        )
        seen.setdefault(key, []).append(r.stack)
    if not seen:
        return None
    rows = [list(k) + [", ".join(sorted(set(v)))] for k, v in seen.items()]
    return Table("Environment", ["device", "driver", "CUDA (torch)", "packages", "image", "git", "stacks"], rows)
