"""The offline fidelity check's table: PagedBench against a plain hand-timed loop on the same engine."""

from __future__ import annotations

from bench.report.collect import Collection, Stat, verdict
from bench.report.tables import Table, fmt, pct


def crosscheck_table(collection: Collection) -> Table | None:
    """`pagedbench crosscheck` comparisons: PagedBench's throughput against a plain hand-timed loop on the
    same loaded engine, repeat by repeat, and what the sampler costs where it was measured."""
    if not collection.crosschecks:
        return None
    rows = []
    for c in collection.crosschecks:
        reps = c.repeats
        each = lambda key: ", ".join(fmt(getattr(r, key, None), 0) for r in reps)  # noqa: E731
        diffs = ", ".join(f"{r.difference:+.1%}" for r in reps)
        mean = "—"
        if reps:
            # files written before the verdict was recorded: the same test on their repeats
            stat = Stat.of([r.difference for r in reps])
            word = c.verdict or verdict(stat, c.threshold)
            ci = c.difference_ci95 if "difference_ci95" in c.model_fields_set else stat.ci95
            mean = f"{stat.mean if c.mean_difference is None else c.mean_difference:+.1%}"
            mean += f" ± {ci:.1%}" if ci is not None else ""
            mean += f" ({word} at ±{c.threshold:.0%})"
        overhead = "not measured"
        if c.sampler_overhead is not None:
            overhead = f"{c.sampler_overhead:+.2%} (spread {c.sampler_overhead_spread:.1%})"
        rows.append(
            [
                f"{c.stack} {c.scenario}" + ("" if c.complete else " (stopped early)"),
                str(len(reps)),
                each("plain_tokens_per_s"),
                each("pagedbench_tokens_per_s"),
                diffs,
                mean,
                pct(c.pagedbench_cv),
                overhead,
                "yes" if c.tokens_match else "no",
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
