"""Cross-check PagedBench's throughput against a minimal hand-timed loop on the same engine and workload.

The plain loop is what a careful person would write: for HF, `generate()` over the same left-padded
batches, no stopping criteria, no sampler, one device sync at the end; for vLLM, one `LLM.generate()`.
Plain and PagedBench runs alternate on one loaded engine, so engine state and clocks are shared.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench.config import Scenario, Suite
from bench.errors import UserError
from bench.harness import RunOptions, _Context, check_fits
from bench.runners import load_runner
from bench.telemetry.sampler import Sampler
from bench.workload import BuiltWorkload

AGREEMENT = 0.03  # PagedBench must agree with the plain loop within 3 %


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


def crosscheck(
    suite: Suite, stack: str, scenario: str, repeats: int = 3, device: str = "auto", progress=print
) -> dict[str, Any]:
    if stack not in PLAIN:
        raise UserError(f"--stack {stack}: cross-checks exist for {', '.join(sorted(PLAIN))}")
    matches = [s for s in suite.scenarios if s.name == scenario and s.stack == stack]
    if not matches:
        names = sorted(s.name for s in suite.scenarios if s.stack == stack)
        raise UserError(
            f"--scenario {scenario}: not a {stack} scenario of {suite.name}; choose from: {', '.join(names)}"
        )
    s: Scenario = matches[0]
    if s.resolved_mode in ("paged",) or s.batch_size == "max":
        raise UserError(f"--scenario {scenario}: the cross-check covers fixed-batch HF modes and vLLM")
    ctx = _Context(suite, RunOptions(stack=stack, out=Path("."), device=device), Path("crosscheck"))
    check_fits(ctx, [s])
    lm = ctx.loaded_model(s)
    w = ctx.workload(s.workload)
    runner = load_runner(stack)(lm, s)
    runner.load()
    runner.configure(lm, s)
    try:
        if w.warmup[: s.warmup_requests]:
            runner.run(w.warmup[: s.warmup_requests], w.spec, warmup=True)
        rows = []
        for i in range(repeats):
            tokens, elapsed = PLAIN[stack](runner, w)
            with Sampler(ctx.opts.sample_interval_ms, ctx.gpu) as sampler:
                runner.set_probe(sampler)
                sampler.mark("run")
                out = runner.run(w.requests, w.spec)
                sampler.engine_probe = None
            bench_tps = sum(out.returned_tokens) / out.elapsed_s
            plain_tps = tokens / elapsed
            rows.append(
                {
                    "repeat": i,
                    "plain_tokens": tokens,
                    "plain_elapsed_s": elapsed,
                    "plain_tokens_per_s": plain_tps,
                    "pagedbench_tokens": sum(out.returned_tokens),
                    "pagedbench_elapsed_s": out.elapsed_s,
                    "pagedbench_tokens_per_s": bench_tps,
                    "difference": bench_tps / plain_tps - 1,
                }
            )
            progress(
                f"repeat {i}: plain {plain_tps:,.1f} tok/s, PagedBench {bench_tps:,.1f} tok/s "
                f"({rows[-1]['difference']:+.2%})"
            )
    finally:
        runner.close()
    diffs = [r["difference"] for r in rows]
    mean = statistics.fmean(diffs)
    return {
        "stack": stack,
        "scenario": scenario,
        "suite": suite.name,
        "model": suite.model,
        "workload_hash": w.hash,
        "expected_tokens": w.output_tokens,
        "environment": ctx.environment,
        "repeats": rows,
        "mean_difference": mean,
        "spread": (max(diffs) - min(diffs)) if len(diffs) > 1 else 0.0,
        "tokens_match": all(r["plain_tokens"] == r["pagedbench_tokens"] == w.output_tokens for r in rows),
        "agrees": abs(mean) <= AGREEMENT,
        "threshold": AGREEMENT,
    }
