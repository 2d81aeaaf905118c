"""vLLM offline `LLM.generate` over the whole workload: continuous batching over a paged KV cache.

Every request is submitted at once with its own SamplingParams (min_tokens = max_tokens = its output
length, EOS ignored). Per-request first/last token times come from the engine's request stats
(engine-core monotonic clock, comparable with this process's time.monotonic()).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.config import Workload
from bench.kv import kv_bytes_per_token
from bench.stacks.base import RequestTiming, Runner, RunOutput
from bench.stacks.vllm import kvprobe
from bench.stacks.vllm.kv import summarize_vllm_kv
from bench.stacks.vllm.options import VllmScenario, cpu_binding, engine_args
from bench.workload import Request, distinct_outputs, per_sample

_GAUGES = {
    "vllm:kv_cache_usage_perc": "kv_usage",
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
    "vllm:num_preemptions": "preemptions",
}


_PREFIX = {"vllm:prefix_cache_queries": "queries", "vllm:prefix_cache_hits": "hits"}


def _difference(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def _gauge_collectors() -> dict | None:
    """The Prometheus collectors of `_GAUGES`, or None where the registry does not expose them (then the
    public `LLM.get_metrics()` snapshot is read instead)."""
    try:
        from prometheus_client import REGISTRY

        found = {name: REGISTRY._names_to_collectors.get(name) for name in _GAUGES}
    except Exception:
        return None
    return found if all(found.values()) else None


def _cache_files() -> set[str]:
    """The files in vLLM's compile cache (VLLM_CACHE_ROOT, by default ~/.cache/vllm): a start that adds
    some compiled from cold; one that finds some and adds none started warm."""
    root = Path(
        os.environ.get("VLLM_CACHE_ROOT") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vllm"
    )
    try:
        return {str(p.relative_to(root)) for p in (root / "torch_compile_cache").rglob("*") if p.is_file()}
    except OSError:
        return set()


def engine_processes() -> set[int]:
    """The engine's processes among this process's live children: those that name themselves an engine
    core where any do (vLLM titles its engine core process), else every live child."""
    live = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                live.append((child.pid, child.name() + " " + " ".join(child.cmdline())))
        except psutil.Error:  # gone between the listing and the look
            continue
    cores = {pid for pid, title in live if "EngineCore" in title}
    return cores or {pid for pid, _ in live}


class EngineDied(RuntimeError):
    pass


@contextlib.contextmanager
def _cpu_ranks_bound(device: str, s: VllmScenario):
    """While the engine starts (its processes read it then), the CPU backend's core binding."""
    bind = cpu_binding(device, s.ranks)
    os.environ.update(bind)
    try:
        yield
    finally:
        for key in bind:
            os.environ.pop(key, None)


class VllmRunner(Runner):
    scenario: VllmScenario

    def engine_args(self) -> dict[str, Any]:
        return {
            "model": str(self.model.path),
            "tokenizer": str(self.model.path),
            "dtype": self.model.dtype,
            "max_model_len": self.model.max_model_len,
            "seed": 0,  # engine-wide sampling seed (per-request seeds would take vLLM's slower sampling path)
            "disable_log_stats": False,  # the engine's metrics are read during the run
            **engine_args(self.scenario.engine_settings()),
        }

    def load(self) -> dict[str, float]:
        # The harness may already have touched CUDA (building a synthetic model, reading devices): a forked
        # engine core could not use it.
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        if self.scenario.kv_cache_space_gib is not None:
            # The CPU backend sizes its KV pool from this variable (read by the spawned engine core).
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(self.scenario.kv_cache_space_gib)
        from vllm import LLM

        self.probe_file = None
        if self.scenario.kv_sharing_probe:  # the engine core (this process's child) finds it by name
            fd, name = tempfile.mkstemp(prefix="pagedbench-kvprobe-")
            os.close(fd)
            self.probe_file = Path(name)
            kvprobe.create(self.probe_file)
            os.environ[kvprobe.ENV] = name
        before = _cache_files()
        t = time.perf_counter()
        with _cpu_ranks_bound(self.model.device, self.scenario):
            self.llm = LLM(**self.engine_args())
        start_s = time.perf_counter() - t
        after = _cache_files()
        self.engine_pids = engine_processes()
        cache = self.llm.llm_engine.vllm_config.cache_config
        self.num_blocks = int(cache.num_gpu_blocks)
        self.block_size = int(cache.block_size)
        self.prefix_caching = bool(cache.enable_prefix_caching)
        hf_config = self.llm.llm_engine.vllm_config.model_config.hf_config
        kv_dtype = "fp8" if self.scenario.kv_cache_dtype == "fp8" else self.model.dtype
        self.bpt = kv_bytes_per_token(hf_config.to_dict(), kv_dtype)
        self.gauge_collectors = _gauge_collectors()  # registered by the engine just started
        timing: dict[str, Any] = {"load_s": start_s, "engine_start_s": start_s}
        if after:  # the engine compiled: it found what it needed, or wrote it
            timing["compile_cache"] = "cold" if after - before else "warm"
        return timing

    def engine_alive(self) -> bool:
        for pid in getattr(self, "engine_pids", ()):
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                return False
        return True

    @contextlib.contextmanager
    def _engine_watch(self, interval_s: float = 1.0):
        """Raise EngineDied in the main thread if the engine process dies: vLLM's client can otherwise wait
        for its output for ever when the engine core is killed mid-run."""
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(interval_s):
                if not self.engine_alive():
                    os.kill(os.getpid(), signal.SIGUSR1)
                    return

        # Helpers that ran while the engine started (compile workers, say) may have exited since: watch the
        # processes alive now.
        self.engine_pids = engine_processes() or self.engine_pids

        def died(signum, frame):
            raise EngineDied(f"the vLLM engine process exited during the run (pids {sorted(self.engine_pids)})")

        previous = signal.signal(signal.SIGUSR1, died)
        watcher = threading.Thread(target=watch, name="pagedbench-engine-watch", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
            signal.signal(signal.SIGUSR1, previous)

    def read_gauges(self) -> dict[str, float]:
        """The engine's KV usage, running and waiting requests and preemptions, summed over engines. Read
        every sampling interval in the process that runs `LLM.generate`: `LLM.get_metrics()` snapshots all
        of vLLM's metrics, histograms included (about 4 ms a call on a small CPU), so only the four
        collectors needed are read when the registry exposes them."""
        collectors = self.gauge_collectors
        if collectors is None:
            return self._snapshot(_GAUGES)
        values = {}
        for name, collector in collectors.items():
            for family in collector.collect():
                for sample in family.samples:
                    if sample.name in (name, f"{name}_total"):
                        values[_GAUGES[name]] = values.get(_GAUGES[name], 0.0) + float(sample.value)
        return values

    def prefix_counters(self) -> dict[str, float]:
        """The engine's prefix-cache counters (prompt tokens looked up, and found cached), summed over
        engines; read before and after a run, their difference is the run's."""
        return self._snapshot(_PREFIX)

    def _snapshot(self, names: dict[str, str]) -> dict[str, float]:
        """The metrics `names` maps (vLLM's name -> ours) from vLLM's public snapshot, summed over engines."""
        values: dict[str, float] = {}
        for m in self.llm.get_metrics():
            key = names.get(m.name.removesuffix("_total"))
            if key is not None and hasattr(m, "value"):
                values[key] = values.get(key, 0.0) + float(m.value)
        return values

    def set_probe(self, sampler) -> None:
        self.sampler = sampler
        sampler.engine_probe = self.read_gauges

    @staticmethod
    def inputs(requests: Sequence[Request], sampling: Workload) -> tuple[list, list]:
        """Prompts as token ids and one SamplingParams per request: exact lengths, EOS ignored."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(r.prompt_ids)) for r in requests]
        params = [
            SamplingParams(
                n=sampling.samples_per_prompt,
                max_tokens=r.output_len,
                min_tokens=r.output_len,
                ignore_eos=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                detokenize=False,  # token ids are counted; text would only add work to the timed region
            )
            for r in requests
        ]
        return prompts, params

    def _generate(self, inputs: tuple, sampling: Workload, use_tqdm: bool = False) -> list:
        """The engine's outputs for `inputs()`'s prompts and parameters, one per request. Beam search is
        vLLM's own (`LLM.beam_search`: one step of all beams per engine call, their common prefixes found in
        the prefix cache); EOS is ignored, so every beam runs to the workload's length (one for all)."""
        prompts, params = inputs
        if sampling.beam_width == 1:
            return self.llm.generate(prompts, params, use_tqdm=use_tqdm)
        from vllm.sampling_params import BeamSearchParams

        length = params[0].max_tokens
        beam = BeamSearchParams(beam_width=sampling.beam_width, max_tokens=length, ignore_eos=True)
        return self.llm.beam_search(prompts, beam, use_tqdm=use_tqdm)

    @staticmethod
    def _tokens(outputs: list, requests: Sequence[Request]) -> list[list]:
        """Each request's outputs as token ids: its n completions, or its beams (whose tokens begin with the
        prompt's)."""
        return [
            [c.token_ids for c in out.outputs]
            if hasattr(out, "outputs")
            else [b.tokens[r.prompt_len :] for b in out.sequences]
            for r, out in zip(requests, outputs)
        ]

    def run(self, requests: Sequence[Request], sampling: Workload, *, warmup: bool = False) -> RunOutput:
        inputs = self.inputs(requests, sampling)
        if self.prefix_caching:
            # A run on a reused engine starts with an empty prefix cache: the last run's prompts (a repeat's,
            # say) must not be found there.
            self.llm.reset_prefix_cache()
        if not warmup:  # the run's own counts: differences across it
            preempt_before = self.read_gauges().get("preemptions", 0.0)
            prefix_before = self.prefix_counters()
        use_tqdm = sys.stderr.isatty() and not warmup
        if self.probe_file is not None:
            kvprobe.arm(self.probe_file)
        with self._engine_watch():  # its setup and teardown outside the timed region
            t0_mono = time.monotonic()
            t0 = time.perf_counter()
            outputs = self._generate(inputs, sampling, use_tqdm)
            elapsed = time.perf_counter() - t0
        tokens = self._tokens(outputs, requests)
        returned, timings, stamped = [], [], 0
        for ids, out in zip(tokens, outputs):  # one per request; n outputs each (their times are the request's)
            m = getattr(out, "metrics", None)
            first = getattr(m, "first_token_ts", 0.0) if m is not None else 0.0
            last = getattr(m, "last_token_ts", 0.0) if m is not None else 0.0
            stamped += bool(first and last)
            for completion in ids:
                returned.append(len(completion))
                if first and last:
                    timings.append(
                        RequestTiming(
                            finish_s=last - t0_mono, first_token_s=first - t0_mono, last_token_s=last - t0_mono
                        )
                    )
                else:
                    timings.append(RequestTiming(finish_s=elapsed))
        source = "vLLM: engine-core first/last token timestamps per request (RequestOutput.metrics)"
        if sampling.beam_width > 1:
            source = "vLLM beam search: no per-request timestamps; every request finishes with the run"
        elif stamped < len(outputs):
            source = f"vLLM: {stamped}/{len(outputs)} requests had engine timestamps; others count the whole run"
        k = sampling.outputs_per_prompt
        distinct = distinct_outputs([c for ids in tokens for c in ids], k) if k > 1 else None
        kv = None
        if not warmup:
            sampler = getattr(self, "sampler", None)
            run = {"run"}
            kv = summarize_vllm_kv(
                num_blocks=self.num_blocks,
                block_size=self.block_size,
                bpt=self.bpt,
                prefix_caching=self.prefix_caching,
                requests=per_sample(requests, sampling.outputs_per_prompt),
                peak_usage=sampler.engine_peak("kv_usage", run) if sampler else None,
                peak_running=sampler.engine_peak("running", run) if sampler else None,
                peak_waiting=sampler.engine_peak("waiting", run) if sampler else None,
                preemptions=self.read_gauges().get("preemptions", 0.0) - preempt_before,
                samples=sum(1 for s in sampler.samples if s.engine and s.phase == "run") if sampler else 0,
                prefix=_difference(self.prefix_counters(), prefix_before),
                ranks=self.scenario.ranks,
            )
            if self.probe_file is not None:
                kv.sharing = kvprobe.summary(self.probe_file)
        return RunOutput(
            elapsed_s=elapsed,
            returned_tokens=returned,
            timings=timings,
            latency_source=source,
            kv=kv,
            distinct_outputs=distinct,
        )

    def plain_run(self, requests: Sequence[Request], sampling: Workload) -> tuple[int, float]:
        """One `LLM.generate()` (or `LLM.beam_search()`) over the same requests, timed around the call."""
        inputs = self.inputs(requests, sampling)
        t0 = time.perf_counter()
        outputs = self._generate(inputs, sampling)
        elapsed = time.perf_counter() - t0
        return sum(len(c) for ids in self._tokens(outputs, requests) for c in ids), elapsed

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:
            pass
        self.llm = None
        del llm
        if getattr(self, "probe_file", None) is not None:
            self.probe_file.unlink(missing_ok=True)
            os.environ.pop(kvprobe.ENV, None)
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
