"""Cross-check PagedBench's throughput against a minimal hand-timed loop on the same engine and workload.

The plain loop is the stack's own (`Runner.plain_run`): what a careful person would write, for HF
`generate()` over the same left-padded batches with one device sync at the end, for vLLM one
`LLM.generate()`. Plain and PagedBench runs alternate on one loaded engine, so engine state and clocks are
shared. With `overhead`, a third arm runs PagedBench with its NVML sampler off: the same interleaving then
measures what the sampler costs, and the PagedBench repeats give the run-to-run coefficient of variation.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import ScenarioBase
from bench.context import RunContext, RunOptions
from bench.errors import CrosscheckFailed, UserError
from bench.harness import run_scenario
from bench.report.collect import Stat, verdict
from bench.results import new_run_id, write_result
from bench.results.crosscheck import CrosscheckResult
from bench.stacks import STACKS, stack_spec
from bench.stacks.base import Runner
from bench.suite import Suite
from bench.workload import BuiltWorkload

AGREEMENT = 0.03  # PagedBench must agree with the plain loop within 3 %
OVERHEAD_LIMIT = 0.01  # the sampler at its default interval must cost under 1 % of throughput


def checkable_stacks() -> list[str]:
    """The stacks whose runners have a plain loop to compare with."""
    return [name for name, spec in STACKS.items() if spec.crosscheck]


def scenario_for(suite: Suite, stack: str, name: str) -> ScenarioBase:
    """The suite's scenario `name` of `stack`, or a UserError listing that stack's scenarios."""
    for s in suite.scenarios:
        if s.name == name and s.stack == stack:
            return s
    names = sorted(s.name for s in suite.scenarios if s.stack == stack)
    raise UserError(f"--scenario {name}: not a {stack} scenario of {suite.name}; choose from: {', '.join(names)}")


def start_engine(ctx: RunContext, scenario: ScenarioBase) -> tuple[ScenarioBase, BuiltWorkload, Runner, dict]:
    """Load `scenario`'s model and engine once, as `pagedbench run` would, and leave it on `ctx` so that
    `run_scenario` reuses it. Returns the budgeted scenario, its workload, the runner and the load timing."""
    ctx.check_fits([scenario])
    p = ctx.prepare(scenario)
    runner, load_timing = ctx.engine_for(p)
    return p.scenario, ctx.workload(scenario.workload), runner, load_timing


@dataclass
class _Check:
    """The arms of one cross-check and the repeats they gave."""

    ctx: RunContext
    scenario: ScenarioBase
    workload: BuiltWorkload
    runner: Runner
    run_id: str
    results: Path | None
    overhead: bool
    written: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def pagedbench(self, sampled: bool, repeat: int) -> tuple[int, float]:
        """One run through the harness's own scenario path, exactly as `pagedbench run` times it."""
        self.ctx.opts.sampler = sampled
        self.ctx.run_dir = Path(self.run_id if sampled else f"{self.run_id}-no-sampler")
        result = run_scenario(self.ctx, self.scenario, repeat)
        if self.results is not None:
            self.written.append(str(write_result(result, self.results / self.ctx.run_dir)))
        if result.status != "ok":
            raise CrosscheckFailed(f"PagedBench's run of {self.scenario.name} {result.status}: {result.error}")
        return result.metrics.output_tokens, result.metrics.elapsed_s

    @property
    def arms(self) -> dict[str, Callable[[int], tuple[int, float]]]:
        arms = {
            "plain": lambda i: self.runner.plain_run(self.workload.requests, self.workload.spec),
            "pagedbench": lambda i: self.pagedbench(True, i),
        }
        if self.overhead:
            arms["pagedbench_no_sampler"] = lambda i: self.pagedbench(False, i)
        return arms

    def repeat(self, i: int) -> str:
        """Every arm once, in an order rotated each repeat (no arm always first or last); the progress line."""
        arms = self.arms
        order = list(arms)
        row: dict[str, Any] = {"repeat": i, "order": order[i % len(order) :] + order[: i % len(order)]}
        for arm in row["order"]:
            tokens, elapsed = arms[arm](i)
            row |= {f"{arm}_tokens": tokens, f"{arm}_elapsed_s": elapsed, f"{arm}_tokens_per_s": tokens / elapsed}
        row["difference"] = row["pagedbench_tokens_per_s"] / row["plain_tokens_per_s"] - 1
        line = (
            f"repeat {i}: plain {row['plain_tokens_per_s']:,.1f} tok/s, "
            f"PagedBench {row['pagedbench_tokens_per_s']:,.1f}"
        )
        if self.overhead:
            row["sampler_overhead"] = 1 - row["pagedbench_tokens_per_s"] / row["pagedbench_no_sampler_tokens_per_s"]
            line += f", without the sampler {row['pagedbench_no_sampler_tokens_per_s']:,.1f}"
        self.rows.append(row)
        return f"{line} ({row['difference']:+.2%})"

    def summary(self, suite: Suite, load_timing: dict, complete: bool) -> CrosscheckResult:
        return CrosscheckResult.model_validate(self._figures(suite, load_timing, complete))

    def _figures(self, suite: Suite, load_timing: dict, complete: bool) -> dict[str, Any]:
        w, rows = self.workload, self.rows
        result: dict[str, Any] = {
            "complete": complete,  # False: stopped early; the figures cover the repeats listed
            "run_id": self.run_id,
            "stack": self.scenario.stack,
            "scenario": self.scenario.name,
            "suite": suite.name,
            "model": suite.model,
            "workload_hash": w.hash,
            "expected_tokens": w.output_tokens,
            "sample_interval_ms": self.ctx.opts.sample_interval_ms,
            "environment": self.ctx.environment,
            "load": load_timing,
            "results": self.written,
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
            "tokens_match": all(r[f"{a}_tokens"] == w.output_tokens for r in rows for a in self.arms),
            "verdict": word,
            "agrees": word == "agrees",
            "threshold": AGREEMENT,
            "pagedbench_cv": Stat.of([r["pagedbench_tokens_per_s"] for r in rows]).cv,
            "plain_cv": Stat.of([r["plain_tokens_per_s"] for r in rows]).cv,
        }
        if self.overhead:
            costs = [r["sampler_overhead"] for r in rows]
            result |= {
                "sampler_overhead": statistics.fmean(costs),
                "sampler_overhead_spread": _spread(costs),
                "sampler_overhead_limit": OVERHEAD_LIMIT,
                "sampler_within_limit": statistics.fmean(costs) < OVERHEAD_LIMIT,
            }
        return result


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
    checkpoint: Callable[[CrosscheckResult], None] | None = None,
) -> CrosscheckResult:
    """Alternate plain and PagedBench runs `repeats` times; with `results`, PagedBench's runs are also
    written there as ordinary results (run `run_id`, and `run_id`-no-sampler for the sampler-off arm).
    `checkpoint` receives the comparison so far after every repeat but the last, marked incomplete."""
    if not stack_spec(stack).crosscheck:
        raise UserError(f"--stack {stack}: cross-checks exist for {', '.join(checkable_stacks())}")
    chosen = scenario_for(suite, stack, scenario)
    refusal = chosen.crosscheck_refusal()
    if refusal:
        raise UserError(f"--scenario {scenario}: {refusal}")
    run_id = run_id or new_run_id()
    ctx = RunContext(suite, RunOptions(stack=stack, out=results or Path("."), device=device), Path(run_id))
    s, w, runner, load_timing = start_engine(ctx, chosen)  # PagedBench's arms reuse this engine
    check = _Check(ctx, s, w, runner, run_id, results, overhead)
    try:
        runner.warm_up(w.warmup[: s.warmup_requests], w.requests, w.spec)  # before the first arm, whichever
        for i in range(repeats):
            progress(check.repeat(i))
            if checkpoint is not None and i < repeats - 1:
                checkpoint(check.summary(suite, load_timing, complete=False))  # a stop keeps what finished
    finally:
        ctx.close_runner()
    return check.summary(suite, load_timing, complete=True)


def _spread(values: list[float]) -> float:
    return max(values) - min(values) if len(values) > 1 else 0.0
