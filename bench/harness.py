"""Run one stack's scenarios of a suite: load, warm up, time, check, write a result per scenario.

`run_scenario(ctx, scenario, repeat)` is the one path a timed run takes, shared by `pagedbench run`
(through `run_suite`), the cross-check and the scripts. A failing scenario is recorded as `failed` with
its error and the next one runs; an interrupt records the current scenario as `interrupted` and stops.
Figures are computed only after the returned tokens match the workload exactly.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from bench import interrupts
from bench.breakdown import memory_breakdown, weights_mib
from bench.config import LARGE_WORKLOAD_TOKENS, ScenarioBase
from bench.context import PreparedScenario, RunContext, RunOptions
from bench.errors import ResultWriteError, UserError
from bench.metrics import check_output, compute_metrics, describe_mismatch
from bench.results import Result, new_run_id, write_result
from bench.results.schema import Metrics, ModelInfo
from bench.roofline import roofline
from bench.stacks import load_runner
from bench.stacks.base import LoadedModel, RunOutput
from bench.suite import Suite
from bench.telemetry.energy import phase_energy
from bench.telemetry.sampler import Sampler
from bench.workload import BuiltWorkload

__all__ = ["Interrupted", "RunContext", "RunOptions", "RunSummary", "run_scenario", "run_suite", "select_scenarios"]

log = logging.getLogger("pagedbench")


class ScenarioTimeout(Exception):
    pass


class Interrupted(KeyboardInterrupt):
    """SIGTERM or Ctrl-C during a run: stop after recording the scenario in flight (a KeyboardInterrupt, so
    that one arriving after the run's own handling still ends as every interrupt does)."""


@dataclass
class RunSummary:
    run_dir: Path
    results: list[Result] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if all(r.status == "ok" for r in self.results) else 1


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def select_scenarios(suite: Suite, stack: str, only: tuple[str, ...]) -> list[ScenarioBase]:
    chosen = [s for s in suite.scenarios if s.stack == stack]
    if only:
        names = {s.name for s in chosen}
        unknown = [n for n in only if n not in names]
        if unknown:
            raise UserError(
                f"--scenario {', '.join(unknown)}: not a {stack} scenario of suite {suite.name}; "
                f"choose from: {', '.join(sorted(names)) or '(none)'}"
            )
        chosen = [s for s in chosen if s.name in only]
    if not chosen:
        stacks = sorted({s.stack for s in suite.scenarios})
        raise UserError(f"suite {suite.name} has no scenarios for stack {stack!r}; its stacks: {', '.join(stacks)}")
    return chosen


@contextlib.contextmanager
def _deadline(seconds: float):
    def fire(signum, frame):
        raise ScenarioTimeout(f"scenario exceeded its timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _identity(ctx: RunContext, s: ScenarioBase, lm: LoadedModel, w: BuiltWorkload, repeat: int) -> dict:
    """The fields every result of `s` has, whatever its outcome: what ran, where, on what."""
    return dict(
        run_id=ctx.run_dir.name,
        suite=ctx.suite.name,
        scenario=s.name,
        stack=s.stack,
        mode=s.resolved_mode,
        repeat=repeat,
        started_at=now_iso(),
        model=ctx.model_info(lm),
        workload=w.summary(),
        config={
            **s.model_dump(exclude=set(s.knobs())),
            "mode": s.resolved_mode,
            "dtype": lm.dtype,
            "max_model_len": lm.max_model_len,
            "device": ctx.device,
            "sample_interval_ms": ctx.opts.sample_interval_ms,
            "sampler": ctx.opts.sampler,
            "options": s.options(),
        },
        environment=ctx.environment,
        log_file=f"{ctx.opts.stack}.log",
        is_measurement=load_runner(s.stack).is_measurement,
    )


def _timed(ctx: RunContext, p: PreparedScenario, w: BuiltWorkload, sampler: Sampler, timing: dict) -> RunOutput:
    """Load (or reuse) the engine, warm up and run the workload once, marking each phase."""
    s = p.scenario
    runner, load = ctx.engine_for(p, before_load=lambda: sampler.mark("load"))
    timing.update(load)
    sampler.mark("warmup")
    warm_s = runner.warm_up(w.warmup[: s.warmup_requests], w.requests, w.spec)
    if warm_s is not None:
        timing["warmup_s"] = warm_s
    elif runner.warmup_shared:
        timing["warmup_shared"] = True
    runner.set_probe(sampler)
    sampler.mark("run")
    out = runner.run(w.requests, w.spec)
    sampler.mark("done")
    sampler.engine_probe = None
    return out


def run_scenario(ctx: RunContext, scenario: ScenarioBase, repeat: int = 0, before: dict | None = None) -> Result:
    """Run one scenario once on the context's engine (loaded if need be) and return its result: `ok`
    with figures, or `failed` / `interrupted` with the reason. Nothing is written. `before`: the timing of
    the run's one-off work before it (`process_start_s`, `setup_s`), recorded on the run's first result."""
    started = time.perf_counter()
    p = ctx.prepare(scenario)
    s, lm, w = p.scenario, p.model, ctx.workload(scenario.workload)
    base = _identity(ctx, s, lm, w, repeat)
    timing: dict = dict(before or {})
    wall = lambda: timing | {"wall_s": time.perf_counter() - started}  # noqa: E731
    if ctx.runner is not None:
        ctx.runner.settle()  # an engine reused from an earlier scenario: its leftovers are not this one's
    sampler = Sampler(ctx.opts.sample_interval_ms, ctx.gpu, background=ctx.opts.sampler)
    status, error, out, check, partial_kv = "failed", None, None, None, None
    try:
        with sampler, _deadline(s.timeout_s):
            out = _timed(ctx, p, w, sampler, timing)
        check = check_output(w, out)
        status, error = ("ok", None) if check.passed else ("failed", describe_mismatch(check, w, out))
    except Interrupted:
        if ctx.runner is not None and not ctx.runner.engine_alive():
            # The engine process died and its client signalled us: a failed scenario, not a user's stop.
            error = f"EngineDied: the {s.stack} engine process exited during the scenario (see {s.stack}.log)"
            status = "failed"
        else:
            error, status = "interrupted by a signal", "interrupted"
        ctx.close_runner()
        return Result(**base, status=status, error=error, finished_at=now_iso(), timing=wall())
    except Exception as e:
        log.debug("scenario %s failed:\n%s", s.name, traceback.format_exc())
        error = f"{type(e).__name__}: {e}".strip()
        partial_kv = getattr(e, "kv", None)  # diagnostics a runner attached to its failure
        ctx.close_runner()  # a failed engine may be half-alive: start fresh for the next scenario
    memory = sampler.memory(ctx.device)
    if out is not None:
        timing["timed_s"] = out.elapsed_s
        for k, v in out.memory.items():
            setattr(memory, k, v)
        memory.breakdown = memory_breakdown(memory, out.kv, ctx.path)
    try:
        metrics = _metrics(ctx, s, lm, w, out, memory, base["model"]) if status == "ok" else None
        energy = None
        if metrics is not None:
            tokens = (metrics.output_tokens, metrics.prompt_tokens)
            energy = phase_energy(memory, "run", ctx.gpus_of(s), *tokens, idle_power=ctx.idle_power)
        return Result(
            **base,
            status=status,
            error=error,
            finished_at=now_iso(),
            timing=wall(),
            metrics=metrics,
            check=check,
            memory=memory,
            energy=energy,
            kv=out.kv if out is not None else partial_kv,
        )
    except ValidationError as e:  # a figure that is no number (NaN, an infinity): not presented as a result
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return Result(
            **base,
            status="failed",
            error=f"FigureInvalid: {where}: {first['msg']} (the measurement gave no usable number)",
            finished_at=now_iso(),
            timing=wall(),
        )


def _metrics(ctx: RunContext, s, lm: LoadedModel, w: BuiltWorkload, out, memory, model: ModelInfo) -> Metrics:
    metrics = compute_metrics(w, out)
    # the KV cache's own element size where the stack says it (an fp8 cache), else the model's
    bpt = (out.kv.bytes_per_token if out.kv is not None else None) or model.kv_bytes_per_token
    # A run split over several devices reads every one's share at once: all the weights, all their bandwidth.
    ranks = s.ranks
    layout = (
        s.roofline_layout(
            w.sequences(),
            weights=int(weights_mib(memory, ctx.path, ranks)[0] * ranks * 2**20),
            bpt=bpt,
            cache_len=lm.max_model_len,
            peak_running=out.kv.sequences if out.kv is not None else None,
            samples=w.samples,
        )
        if bpt
        else None
    )
    if layout is not None:
        metrics.roofline = roofline(*layout, ctx.bandwidth_gbps and ctx.bandwidth_gbps * ranks, metrics.elapsed_s)
    return metrics


def _warn_busy(ctx: RunContext, opts: RunOptions, progress) -> None:
    others = ctx.environment.get("gpu_processes_before") or []
    if not others:
        return
    held = sum(p["used_mib"] or 0 for p in others)
    message = f"{len(others)} other process(es) hold {held:,.0f} MiB on the GPU: their use would pollute the figures"
    if opts.busy_gpu == "refuse":
        raise UserError(message + " (--busy-gpu refuse)")
    progress(f"warning: {message}; each result records them (--busy-gpu refuse to stop instead)")


def by_engine(ctx: RunContext, scenarios: list[ScenarioBase]) -> list[ScenarioBase]:
    """The scenarios with those that can share an engine next to each other (in the order each engine is
    first needed, and the suite's order within it): every engine starts once."""
    keys = [ctx.prepare(s).engine_key for s in scenarios]
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    return [s for _, s in sorted(zip(keys, scenarios), key=lambda pair: first[pair[0]])]


def _since_process_start() -> float | None:
    """Seconds since this process started: the interpreter, the imports and the command line before a run."""
    try:
        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:  # no psutil, or no process table to read: the run records no start-up time
        return None


def run_suite(suite: Suite, opts: RunOptions, progress=print) -> RunSummary:
    process_start_s = _since_process_start()
    started = time.perf_counter()
    scenarios = select_scenarios(suite, opts.stack, opts.only)
    run_dir = opts.out / (opts.run_id or new_run_id())
    ctx = RunContext(suite, opts, run_dir)
    ctx.check_fits(scenarios)
    scenarios = by_engine(ctx, scenarios)
    _warn_busy(ctx, opts, progress)
    summary = RunSummary(run_dir=run_dir)
    repeats = {s.name: opts.repeats or s.repeats for s in scenarios}
    total = sum(repeats.values())
    before: dict | None = {"process_start_s": process_start_s, "setup_s": time.perf_counter() - started}
    with interrupts.raising(Interrupted):
        try:
            k = 0
            for s in scenarios:
                for repeat in range(repeats[s.name]):
                    k += 1
                    spec = suite.workloads[s.workload]
                    if s.workload not in ctx.workloads and spec.prompt_tokens_upper > LARGE_WORKLOAD_TOKENS:
                        progress(
                            f"building workload {s.workload}: {spec.num_requests:,} requests, up to "
                            f"{spec.prompt_tokens_upper:,} prompt tokens (about a second per million) ..."
                        )
                    w = ctx.workload(s.workload)
                    progress(
                        f"[{k}/{total}] {s.stack} {s.name} ({s.resolved_mode}, {len(w.requests)} requests, "
                        f"{w.output_tokens} output tokens){f' repeat {repeat}' if repeats[s.name] > 1 else ''} ..."
                    )
                    result = run_scenario(ctx, s, repeat, before)
                    before = None  # once, on the run's first result
                    _write(result, run_dir, summary)
                    progress(f"[{k}/{total}] {s.name}: {one_line(result)}")
                    if result.status == "interrupted":
                        summary.interrupted = True
                        return summary
        except Interrupted:
            summary.interrupted = True
        finally:
            ctx.close_runner()
    return summary


def _write(result: Result, run_dir: Path, summary: RunSummary) -> None:
    try:
        write_result(result, run_dir)
    except OSError as e:
        raise ResultWriteError(
            f"cannot write the result of {result.scenario} into {run_dir}: {e.strerror or e}; "
            f"the {len(summary.results)} result(s) written before are intact"
        ) from None
    summary.results.append(result)


def one_line(r: Result) -> str:
    """The console's line for a finished scenario: its figures, KV set aside and holding tokens, peak memory."""
    if r.status != "ok":
        return f"{r.status.upper()}: {r.error}"
    m = r.metrics
    note = "" if r.is_measurement else " (fake runner: not a measurement)"
    line = (
        f"ok, {m.output_tokens} tokens in {m.elapsed_s:.2f} s = {m.output_tokens_per_s:,.1f} output tok/s, "
        f"{m.requests_per_s:.2f} req/s, p50 latency {m.latency_ms.p50:,.0f} ms"
    )
    if r.kv is not None and r.kv.reserved_bytes_peak:
        size = r.kv.reserved_bytes_peak
        line += f"; KV {size / 2**30:,.2f} GiB" if size >= 2**30 else f"; KV {size / 2**20:,.1f} MiB"
        line += " set aside"
        if r.kv.utilization_at_peak is not None:
            line += f", {r.kv.utilization_at_peak:.1%} of it holding tokens at peak"
    mem = r.memory
    peak = mem and (mem.peak_process_used_mib or mem.peak_device_used_mib)
    if peak:
        line += f"; peak GPU memory {peak:,.0f} MiB"
    elif mem and mem.peak_host_rss_mib:
        line += f"; peak host memory {mem.peak_host_rss_mib:,.0f} MiB"
    return line + note
