"""Cross-check PagedBench's throughput against a minimal hand-timed loop on the same engine and workload.

The plain loop is what a careful person would write: for HF, `generate()` over the same left-padded
batches, no stopping criteria, no sampler, one device sync at the end; for vLLM, one `LLM.generate()`.
Plain and PagedBench runs alternate on one loaded engine, so engine state and clocks are shared. With
`overhead`, a third arm runs PagedBench with its NVML sampler off: the same interleaving then measures
what the sampler costs, and the PagedBench repeats give the run-to-run coefficient of variation.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.config import Scenario, Suite
from bench.errors import CrosscheckFailed, UserError
from bench.harness import RunOptions, _Context, _run_one, budgeted, check_fits
from bench.report.collect import Stat, verdict
from bench.results import new_run_id, write_result
from bench.runners import load_runner
from bench.runners.base import Runner
from bench.workload import BuiltWorkload

AGREEMENT = 0.03  # PagedBench must agree with the plain loop within 3 %
OVERHEAD_LIMIT = 0.01  # the sampler at its default interval must cost under 1 % of throughput


def plain_hf(runner, w: BuiltWorkload) -> tuple[int, float]:
    size = runner.scenario.resolved_batch_size or len(w.requests)
    if runner.scenario.resolved_mode == "sequential":
        size = 1
    torch = runner.torch
    runner.sampling = w.spec
    runner._sync()
    t0 = time.perf_counter()
    tokens = 0
    with torch.inference_mode():
        for i in range(0, len(w.requests), size):
            batch = w.requests[i : i + size]
            kwargs = runner.generate_kwargs(batch)
            out = runner.hf.generate(**kwargs)
            generated = out.shape[1] - kwargs["input_ids"].shape[1]
            tokens += sum(min(r.output_len, generated) for r in batch)
    runner._sync()
    return tokens, time.perf_counter() - t0


def plain_vllm(runner, w: BuiltWorkload) -> tuple[int, float]:
    prompts, params = runner.inputs(w.requests, w.spec)
    t0 = time.perf_counter()
    outputs = runner.llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - t0
    return sum(len(o.outputs[0].token_ids) for o in outputs), elapsed


PLAIN = {"hf": plain_hf, "vllm": plain_vllm}


def scenario_for(suite: Suite, stack: str, name: str) -> Scenario:
    """The suite's scenario `name` of `stack`, or a UserError listing that stack's scenarios."""
    for s in suite.scenarios:
        if s.name == name and s.stack == stack:
            return s
    names = sorted(s.name for s in suite.scenarios if s.stack == stack)
    raise UserError(f"--scenario {name}: not a {stack} scenario of {suite.name}; choose from: {', '.join(names)}")


def start_engine(ctx: _Context, scenario: Scenario) -> tuple[Scenario, BuiltWorkload, Runner, dict[str, float]]:
    """Load `scenario`'s model and engine once, as `pagedbench run` would, and leave the engine on `ctx`
    so that the harness's own scenario path reuses it. Returns the budgeted scenario, its workload, the
    runner and the load timing."""
    check_fits(ctx, [scenario])
    s = budgeted(ctx, scenario)
    lm = ctx.loaded_model(s)
    w = ctx.workload(s.workload)
    cls = load_runner(ctx.opts.stack)
    runner = cls(lm, s)
    load_timing = runner.load()
    runner.configure(lm, s)
    ctx.runner, ctx.runner_key = runner, cls.engine_key(lm, s)
    return s, w, runner, load_timing


def crosscheck(
    suite: Suite,
    stack: str,
    scenario: str,
    repeats: int = 3,
    device: str = "auto",
    overhead: bool = True,
    results: Path | None = None,
    run_id: str | None = None,
    progress=print,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Alternate plain and PagedBench runs `repeats` times; with `results`, PagedBench's runs are also
    written there as ordinary results (run `run_id`, and `run_id`-no-sampler for the sampler-off arm).
    `checkpoint` receives the comparison so far after every repeat but the last, marked incomplete."""
    if stack not in PLAIN:
        raise UserError(f"--stack {stack}: cross-checks exist for {', '.join(sorted(PLAIN))}")
    scenario_ = scenario_for(suite, stack, scenario)
    if scenario_.resolved_mode == "paged" or scenario_.batch_size == "max":
        raise UserError(f"--scenario {scenario}: the cross-check covers fixed-batch HF modes and vLLM")
    run_id = run_id or new_run_id()
    ctx = _Context(suite, RunOptions(stack=stack, out=results or Path("."), device=device), Path(run_id))
    s, w, runner, load_timing = start_engine(ctx, scenario_)  # PagedBench's arms reuse this engine
    written: list[str] = []

    def pagedbench(sampled: bool, repeat: int) -> tuple[int, float]:
        """One run through the harness's own scenario path, exactly as `pagedbench run` times it."""
        ctx.opts.sampler = sampled
        ctx.run_dir = Path(run_id if sampled else f"{run_id}-no-sampler")
        result = _run_one(ctx, s, repeat)
        if results is not None:
            written.append(str(write_result(result, results / ctx.run_dir)))
        if result.status != "ok":
            raise CrosscheckFailed(f"PagedBench's run of {scenario} {result.status}: {result.error}")
        return result.metrics.output_tokens, result.metrics.elapsed_s

    arms: dict[str, Callable[[int], tuple[int, float]]] = {
        "plain": lambda i: PLAIN[stack](runner, w),
        "pagedbench": lambda i: pagedbench(True, i),
    }
    if overhead:
        arms["pagedbench_no_sampler"] = lambda i: pagedbench(False, i)
    order = list(arms)

    def summary(rows: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
        result: dict[str, Any] = {
            "kind": "crosscheck",
            "complete": complete,  # False: stopped early; the figures cover the repeats listed
            "run_id": run_id,
            "stack": stack,
            "scenario": scenario,
            "suite": suite.name,
            "model": suite.model,
            "workload_hash": w.hash,
            "expected_tokens": w.output_tokens,
            "sample_interval_ms": ctx.opts.sample_interval_ms,
            "environment": ctx.environment,
            "load": load_timing,
            "results": written,
            "repeats": rows,
        }
        if not rows:
            return result
        diffs = [r["difference"] for r in rows]
        diff = Stat.of(diffs)
        word = verdict(diff, AGREEMENT)
        result |= {
            "mean_difference": diff.mean,
            "difference_ci95": diff.ci95,
            "spread": _spread(diffs),
            "tokens_match": all(r[f"{a}_tokens"] == w.output_tokens for r in rows for a in arms),
            "verdict": word,
            "agrees": word == "agrees",
            "threshold": AGREEMENT,
            "pagedbench_cv": Stat.of([r["pagedbench_tokens_per_s"] for r in rows]).cv,
            "plain_cv": Stat.of([r["plain_tokens_per_s"] for r in rows]).cv,
        }
        if overhead:
            costs = [r["sampler_overhead"] for r in rows]
            result |= {
                "sampler_overhead": statistics.fmean(costs),
                "sampler_overhead_spread": _spread(costs),
                "sampler_overhead_limit": OVERHEAD_LIMIT,
                "sampler_within_limit": statistics.fmean(costs) < OVERHEAD_LIMIT,
            }
        return result

    rows: list[dict[str, Any]] = []
    try:
        runner.warm_up(w.warmup[: s.warmup_requests], w.requests, w.spec)  # before the first arm, whichever
        for i in range(repeats):
            row: dict[str, Any] = {"repeat": i, "order": order[i % len(order) :] + order[: i % len(order)]}
            for arm in row["order"]:  # rotated each repeat: no arm always runs first or last
                tokens, elapsed = arms[arm](i)
                row |= {f"{arm}_tokens": tokens, f"{arm}_elapsed_s": elapsed, f"{arm}_tokens_per_s": tokens / elapsed}
            row["difference"] = row["pagedbench_tokens_per_s"] / row["plain_tokens_per_s"] - 1
            line = (
                f"repeat {i}: plain {row['plain_tokens_per_s']:,.1f} tok/s, "
                f"PagedBench {row['pagedbench_tokens_per_s']:,.1f}"
            )
            if overhead:
                row["sampler_overhead"] = 1 - row["pagedbench_tokens_per_s"] / row["pagedbench_no_sampler_tokens_per_s"]
                line += f", without the sampler {row['pagedbench_no_sampler_tokens_per_s']:,.1f}"
            rows.append(row)
            progress(f"{line} ({row['difference']:+.2%})")
            if checkpoint is not None and i < repeats - 1:
                checkpoint(summary(rows, complete=False))  # a stop keeps the repeats that finished
    finally:
        ctx.close_runner()
    return summary(rows, complete=True)


def _spread(values: list[float]) -> float:
    return max(values) - min(values) if len(values) > 1 else 0.0
