"""Run one stack's scenarios of a suite: load, warm up, time, check, write a result per scenario.

A failing scenario is recorded as `failed` with its error and the next one runs; an interrupt records
the current scenario as `interrupted` and stops. Figures are computed only after the returned tokens
match the workload exactly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from bench.breakdown import memory_breakdown, weights_mib
from bench.config import Scenario, Suite
from bench.errors import ResultWriteError, UserError
from bench.metrics import check_output, compute_metrics, describe_mismatch
from bench.models import ModelRef, parse_model
from bench.models.reference import max_position, model_json
from bench.results import Result, new_run_id, write_result
from bench.results.schema import Metrics, ModelInfo
from bench.roofline import bandwidth_in_subprocess, roofline
from bench.runners import load_runner
from bench.runners.base import LoadedModel, Runner
from bench.telemetry import environment
from bench.telemetry.gpu import Gpu
from bench.telemetry.sampler import Sampler
from bench.workload import BuiltWorkload, build_workload

log = logging.getLogger("pagedbench")


class ScenarioTimeout(Exception):
    pass


class Interrupted(BaseException):
    """SIGTERM or Ctrl-C: stop after recording the scenario in flight."""


@dataclass
class RunOptions:
    stack: str
    out: Path
    device: str = "auto"
    repeats: int = 1
    only: tuple[str, ...] = ()
    sample_interval_ms: float = 50.0
    busy_gpu: str = "warn"  # or "refuse"
    sampler: bool = True  # background sampling (monitor process and gauge thread)
    run_id: str | None = None


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


def select_scenarios(suite: Suite, stack: str, only: tuple[str, ...]) -> list[Scenario]:
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


def resolve_device(requested: str, stack: str) -> str:
    if stack == "fake":
        return "cpu"
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible to torch")
    return requested


def materialize(ref: ModelRef) -> Path:
    """A local directory for the model (synthetic: built once into the cache; hub: downloaded)."""
    if ref.source == "synthetic":
        from bench.models.synthetic import cache_root, ensure_synthetic

        try:
            return ensure_synthetic(ref.preset, ref.seed)
        except OSError as e:  # PAGEDBENCH_CACHE is a file, read-only, full
            raise UserError(
                f"model cache {cache_root()}: cannot build {ref.spec} there: {e.strerror or e}; set "
                "PAGEDBENCH_CACHE to a writable directory"
            ) from None
    if ref.source == "local":
        return ref.path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref.spec, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))
    except Exception as e:  # offline host, unknown repo, gated model without a token
        raise UserError(f"model {ref.spec!r}: cannot download from the hub: {type(e).__name__}: {e}") from None


def resolve_dtype(requested: str, config: dict, device: str) -> str:
    if requested != "auto":
        return requested
    if device == "cpu":
        return "float32"
    saved = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return saved if saved in ("float16", "bfloat16") else "bfloat16"


class _Context:
    """What every scenario of one run shares: model, workloads, environment, the loaded runner."""

    def __init__(self, suite: Suite, opts: RunOptions, run_dir: Path) -> None:
        self.suite, self.opts, self.run_dir = suite, opts, run_dir
        self.ref = parse_model(suite.model)
        self.device = resolve_device(opts.device, opts.stack)
        self.path = materialize(self.ref)
        self.config = model_json(self.path, "config.json")
        self.max_position = self.ref.max_position or max_position(self.config)
        if self.max_position is None:
            raise UserError("the model's config names no maximum length; set max_model_len in the scenario")
        self.gpu = Gpu()
        self.environment = environment.collect(self.gpu)
        self.environment["device"] = self.device
        self.bandwidth_gbps = bandwidth_in_subprocess() if self.device == "cuda" else None
        self.environment["copy_bandwidth_gbps"] = self.bandwidth_gbps
        self._tokenizer = None
        self.workloads: dict[str, BuiltWorkload] = {}
        self.runner: Runner | None = None
        self.runner_key = None

    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.path)
            except (OSError, ValueError, TypeError, KeyError) as e:  # a corrupt tokenizer.json, say
                raise UserError(f"model {self.path}: its tokenizer cannot be loaded: {type(e).__name__}: {e}") from None
        return self._tokenizer

    def token_pool(self) -> range | list[int]:
        if self.ref.source == "synthetic":
            return range(256)  # the byte tokens of the synthetic tokenizer
        tok = self.tokenizer()
        special = set(tok.all_special_ids)
        return [i for i in range(tok.vocab_size) if i not in special]

    def workload(self, name: str) -> BuiltWorkload:
        """Built once per run; with as many warm-up requests as any scenario using it asks for."""
        if name not in self.workloads:
            spec = self.suite.workloads[name]
            encode = (lambda text: self.tokenizer().encode(text, add_special_tokens=False)) if spec.prompts else None
            pool = self.token_pool()  # random prompts and the warm-up requests draw from it
            warm = max(s.warmup_requests for s in self.suite.scenarios if s.workload == name)
            self.workloads[name] = build_workload(name, spec, pool, encode, warmup_requests=warm)
        return self.workloads[name]

    def loaded_model(self, s: Scenario) -> LoadedModel:
        return LoadedModel(
            path=self.path,
            spec=self.ref.spec,
            dtype=resolve_dtype(s.dtype, self.config, self.device),
            max_model_len=s.max_model_len or self.max_position,
            device=self.device,
        )

    def model_info(self, lm: LoadedModel) -> ModelInfo:
        from bench.kv import kv_bytes_per_token

        try:
            bpt = kv_bytes_per_token(self.config, lm.dtype)
        except ValueError:
            bpt = None
        marker = self.path / "pagedbench-model.json"
        params = json.loads(marker.read_text()).get("params") if marker.is_file() else None
        return ModelInfo(
            spec=self.ref.spec,
            source=self.ref.source,
            path=str(self.path),
            preset=self.ref.preset.name if self.ref.preset else None,
            seed=self.ref.seed if self.ref.preset else None,
            architecture=(self.config.get("architectures") or [None])[0],
            params=params,
            dtype=lm.dtype,
            max_model_len=lm.max_model_len,
            kv_bytes_per_token=bpt,
        )

    def close_runner(self) -> None:
        if self.runner is not None:
            with contextlib.suppress(Exception):
                self.runner.close()
        self.runner, self.runner_key = None, None


def check_fits(ctx: _Context, scenarios: list[Scenario]) -> None:
    """Every request must fit its scenario's max model length: a user error, found before any run."""
    for s in scenarios:
        lm = ctx.loaded_model(s)
        if lm.max_model_len > ctx.max_position and s.stack != "fake":
            raise UserError(
                f"scenario {s.name}: max_model_len {lm.max_model_len} exceeds the model's {ctx.max_position}"
            )
        w = ctx.workload(s.workload)
        if w.max_total_len > lm.max_model_len:
            raise UserError(
                f"scenario {s.name}: workload {w.name} has a request of {w.max_total_len} tokens "
                f"(prompt + output), over max_model_len {lm.max_model_len}"
            )


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


def budgeted(ctx: _Context, s: Scenario) -> Scenario:
    """The scenario with its memory budget (GiB) turned into each stack's fraction of this device."""
    return s.with_budget((ctx.environment.get("gpu") or {}).get("memory_total_mib") if ctx.device == "cuda" else None)


def _run_one(ctx: _Context, s: Scenario, repeat: int) -> Result:
    s = budgeted(ctx, s)
    lm = ctx.loaded_model(s)
    w = ctx.workload(s.workload)
    started = now_iso()
    base = dict(
        run_id=ctx.run_dir.name,
        suite=ctx.suite.name,
        scenario=s.name,
        stack=s.stack,
        mode=s.resolved_mode,
        repeat=repeat,
        started_at=started,
        model=ctx.model_info(lm),
        workload=w.summary(),
        config={
            **s.model_dump(),
            "mode": s.resolved_mode,
            "dtype": lm.dtype,
            "max_model_len": lm.max_model_len,
            "device": ctx.device,
            "sample_interval_ms": ctx.opts.sample_interval_ms,
            "sampler": ctx.opts.sampler,
        },
        environment=ctx.environment,
        log_file=f"{ctx.opts.stack}.log",
    )
    cls = load_runner(s.stack)
    base["is_measurement"] = cls.is_measurement
    timing: dict[str, float] = {}
    sampler = Sampler(ctx.opts.sample_interval_ms, ctx.gpu, background=ctx.opts.sampler)
    status, error, out, partial_kv = "failed", None, None, None
    try:
        with sampler, _deadline(s.timeout_s):
            key = cls.engine_key(lm, s)
            if ctx.runner_key != key:
                ctx.close_runner()
                sampler.mark("load")
                runner = cls(lm, s)
                timing.update(runner.load())
                ctx.runner, ctx.runner_key = runner, key
            else:
                timing["engine_reused"] = 1.0
            runner = ctx.runner
            runner.configure(lm, s)
            sampler.mark("warmup")
            warm_s = runner.warm_up(w.warmup[: s.warmup_requests], w.requests, w.spec)
            if warm_s is not None:
                timing["warmup_s"] = warm_s
            runner.set_probe(sampler)
            sampler.mark("run")
            out = runner.run(w.requests, w.spec)
            sampler.mark("done")
            sampler.engine_probe = None
        check = check_output(w, out)
        if check.passed:
            status = "ok"
        else:
            error = describe_mismatch(check, w, out)
    except Interrupted:
        if ctx.runner is not None and not ctx.runner.engine_alive():
            # The engine process died and its client signalled us: a failed scenario, not a user's stop.
            error = f"EngineDied: the {s.stack} engine process exited during the scenario (see {s.stack}.log)"
            ctx.close_runner()
            return Result(**base, status="failed", error=error, finished_at=now_iso(), timing=timing)
        ctx.close_runner()
        return Result(
            **base, status="interrupted", error="interrupted by a signal", finished_at=now_iso(), timing=timing
        )
    except Exception as e:
        log.debug("scenario %s failed:\n%s", s.name, traceback.format_exc())
        error = f"{type(e).__name__}: {e}".strip()
        check = None
        partial_kv = getattr(e, "kv", None)  # diagnostics a runner attached to its failure
        ctx.close_runner()  # a failed engine may be half-alive: start fresh for the next scenario
    memory = sampler.memory(ctx.device)
    if out is not None:
        for k, v in out.memory.items():
            setattr(memory, k, v)
        memory.breakdown = memory_breakdown(memory, out.kv, ctx.path)
    try:
        return Result(
            **base,
            status=status,
            error=error,
            finished_at=now_iso(),
            timing=timing,
            metrics=_metrics(ctx, s, lm, w, out, memory, base["model"].kv_bytes_per_token) if status == "ok" else None,
            check=check,
            memory=memory,
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
            timing=timing,
        )


def _metrics(ctx: _Context, s: Scenario, lm: LoadedModel, w: BuiltWorkload, out, memory, bpt) -> Metrics:
    metrics = compute_metrics(w, out)
    if bpt:
        weights = int(weights_mib(memory, ctx.path)[0] * 2**20)
        running = (out.kv or {}).get("peak_running") or s.max_num_seqs or 256
        metrics.roofline = roofline(
            stack=s.stack,
            mode=s.resolved_mode,
            requests=w.requests,
            batch_size=s.resolved_batch_size,
            weights=weights,
            bpt=bpt,
            cache_len=lm.max_model_len,
            max_running=int(running),
            bandwidth_gbps=ctx.bandwidth_gbps,
            elapsed_s=metrics.elapsed_s,
        )
    return metrics


def _raise_interrupted(signum, frame):
    # A second Ctrl-C (a key held, a terminal's double send) must not cut short the recording of the
    # scenario in flight: further signals wait until run_suite restores the handlers on its way out.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted()


def run_suite(suite: Suite, opts: RunOptions, progress=print) -> RunSummary:
    scenarios = select_scenarios(suite, opts.stack, opts.only)
    run_dir = opts.out / (opts.run_id or new_run_id())
    ctx = _Context(suite, opts, run_dir)
    check_fits(ctx, scenarios)
    others = ctx.environment.get("gpu_processes_before") or []
    if others:
        held = sum(p["used_mib"] or 0 for p in others)
        message = (
            f"{len(others)} other process(es) hold {held:,.0f} MiB on the GPU: their use would pollute the figures"
        )
        if opts.busy_gpu == "refuse":
            raise UserError(message + " (--busy-gpu refuse)")
        progress(f"warning: {message}; each result records them (--busy-gpu refuse to stop instead)")
    summary = RunSummary(run_dir=run_dir)
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
    total = len(scenarios) * opts.repeats
    try:
        k = 0
        for s in scenarios:
            for repeat in range(opts.repeats):
                k += 1
                w = ctx.workload(s.workload)
                progress(
                    f"[{k}/{total}] {s.stack} {s.name} ({s.resolved_mode}, {len(w.requests)} requests, "
                    f"{w.output_tokens} output tokens){f' repeat {repeat}' if opts.repeats > 1 else ''} ..."
                )
                result = _run_one(ctx, s, repeat)
                try:
                    write_result(result, run_dir)
                except OSError as e:
                    raise ResultWriteError(
                        f"cannot write the result of {s.name} into {run_dir}: {e.strerror or e}; "
                        f"the {len(summary.results)} result(s) written before are intact"
                    ) from None
                summary.results.append(result)
                progress(f"[{k}/{total}] {s.name}: {_one_line(result)}")
                if result.status == "interrupted":
                    summary.interrupted = True
                    return summary
    except Interrupted:
        summary.interrupted = True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        ctx.close_runner()
    return summary


def _one_line(r: Result) -> str:
    if r.status != "ok":
        return f"{r.status.upper()}: {r.error}"
    m = r.metrics
    note = "" if r.is_measurement else " (fake runner: not a measurement)"
    line = (
        f"ok, {m.output_tokens} tokens in {m.elapsed_s:.2f} s = {m.output_tokens_per_s:,.1f} output tok/s, "
        f"{m.requests_per_s:.2f} req/s, p50 latency {m.latency_ms.p50:,.0f} ms"
    )
    kv = r.kv or {}
    if kv.get("reserved_bytes_peak"):
        size = kv["reserved_bytes_peak"]
        line += f"; KV {size / 2**30:,.2f} GiB" if size >= 2**30 else f"; KV {size / 2**20:,.1f} MiB"
        line += " set aside"
        if kv.get("utilization_at_peak") is not None:
            line += f", {kv['utilization_at_peak']:.1%} of it holding tokens at peak"
    mem = r.memory
    peak = mem and (mem.peak_process_used_mib or mem.peak_device_used_mib)
    if peak:
        line += f"; peak GPU memory {peak:,.0f} MiB"
    elif mem and mem.peak_host_rss_mib:
        line += f"; peak host memory {mem.peak_host_rss_mib:,.0f} MiB"
    return line + note
