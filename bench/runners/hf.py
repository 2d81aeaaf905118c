"""Hugging Face transformers `generate()`: sequential, static padded batches, or a StaticCache.

Every batch is left-padded to its longest prompt and generates to its longest output (EOS suppressed
with min_new_tokens); a request's useful tokens are its own output length. The KV cache each batch
held is read from the cache object itself, not computed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bench.config import Workload
from bench.kv import hf_batch_kv, summarize_hf_kv
from bench.runners.base import LoadedModel, RequestTiming, Runner, RunOutput
from bench.workload import Request, batches


class ScenarioOOM(RuntimeError):
    pass


class HfRunner(Runner):
    @staticmethod
    def engine_key(model: LoadedModel, scenario) -> tuple:
        # One set of weights serves every mode, batch size and max length.
        return ("hf", model.path, model.dtype, model.device, scenario.memory_fraction)

    def load(self) -> dict[str, float]:
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        self.device = torch.device(self.model.device)
        if self.device.type == "cuda" and self.scenario.memory_fraction:
            torch.cuda.set_per_process_memory_fraction(self.scenario.memory_fraction)
        t = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(self.model.path, dtype=getattr(torch, self.model.dtype))
        self.hf = model.to(self.device).eval()
        self._sync()
        load_s = time.perf_counter() - t
        self.weights_bytes = sum(p.numel() * p.element_size() for p in self.hf.parameters())
        self.weights_bytes += sum(b.numel() * b.element_size() for b in self.hf.buffers())
        gen = self.hf.generation_config
        self.pad_id = gen.pad_token_id if gen.pad_token_id is not None else (gen.eos_token_id or 0)
        if isinstance(self.pad_id, list):
            self.pad_id = self.pad_id[0]
        self.eos_ids = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
        return {"load_s": load_s}

    def memory_figures(self) -> dict[str, float]:
        """Weights on the device and the torch allocator's peaks since the run began."""
        memory = {"weights_mib": self.weights_bytes / 2**20}
        if self.device.type == "cuda":
            memory["torch_peak_allocated_mib"] = self.torch.cuda.max_memory_allocated() / 2**20
            memory["torch_peak_reserved_mib"] = self.torch.cuda.max_memory_reserved() / 2**20
        return memory

    def set_probe(self, sampler) -> None:
        # Paged mode reports its pool usage through the sampler; `batch_size: max` marks its search.
        self.sampler = sampler

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def close(self) -> None:
        self.hf = None
        if getattr(self, "torch", None) is not None and self.device.type == "cuda":
            self.torch.cuda.empty_cache()
            if self.scenario.memory_fraction:
                self.torch.cuda.set_per_process_memory_fraction(1.0)  # the cap is process-wide

    # --- timed run -------------------------------------------------------------------------------------

    def run(self, requests: Sequence[Request], sampling: Workload, *, warmup: bool = False) -> RunOutput:
        torch = self.torch
        self.sampling = sampling
        torch.manual_seed(sampling.seed)
        mode = self.scenario.resolved_mode
        if mode == "paged":
            from bench.runners.hf_paged import run_paged

            return run_paged(self, requests, sampling, warmup=warmup)
        size = 1 if mode == "sequential" else self.scenario.resolved_batch_size
        if size is not None:
            return self._run_batches(requests, size, warmup)
        if warmup:
            return self._run_batches(requests, len(requests), warmup)
        return self._run_largest(requests)

    def warm_up(self, warmup: Sequence[Request], requests: Sequence[Request], sampling: Workload) -> float | None:
        """The warm-up requests, then the timed run's most demanding batch once. On an H200 the first
        pass over the full-size batches of a fresh process ran at less than half the speed of every later
        pass, after a warm-up of a few short requests: generating the largest batch once takes that cost
        out of the timed run."""
        seconds = super().warm_up(warmup, requests, sampling)
        size = 1 if self.scenario.resolved_mode == "sequential" else self.scenario.resolved_batch_size
        if size is None or self.scenario.resolved_mode == "paged" or not requests:
            return seconds  # `batch_size: max` probes full-size batches before its run; paged has no batches
        worst = max(batches(requests, size), key=padded_slots)
        self.sampling = sampling
        t = time.perf_counter()
        self._generate(worst, t)
        self._sync()
        return (seconds or 0.0) + time.perf_counter() - t

    def _run_largest(self, requests: Sequence[Request]) -> RunOutput:
        """batch_size: max. Search the largest batch, then run the workload at it; if a batch the search
        did not probe runs out of memory, step the size down and run again. Every attempt is recorded."""
        sampler = getattr(self, "sampler", None)
        if sampler is not None:
            sampler.mark("capacity search")  # charts show it apart from the timed run
        size, capacity = self._largest_batch(requests)
        if sampler is not None:
            sampler.mark("run")
        while True:
            try:
                out = self._run_batches(requests, size, warmup=False)
                break
            except ScenarioOOM as e:
                capacity["probes"].append(
                    {"batch_size": size, "fits": False, "during": "full run", "error": str(e)[:200]}
                )
                size -= max(1, size // 8)
                if size < 1:
                    e.kv = {"capacity": capacity}  # keep the search's data in the failed result
                    raise
        capacity["max_batch"] = size
        out.kv["capacity"] = capacity
        return out

    def _run_batches(self, requests: Sequence[Request], size: int, warmup: bool) -> RunOutput:
        mode = self.scenario.resolved_mode
        returned = [0] * len(requests)
        timings: list[RequestTiming | None] = [None] * len(requests)
        kv_batches = []
        self._reset_peak()
        bar = _progress(len(requests), f"hf {mode} b={size}", disable=warmup)
        self._sync()
        t0 = time.perf_counter()
        offset = 0
        for batch in batches(requests, size):
            counts, first_s, token_s, end_s, kv = self._generate(batch, t0)
            for j, r in enumerate(batch):
                returned[offset + j] = counts[j]
                last = token_s[r.output_len - 1] if len(token_s) >= r.output_len else end_s
                timings[offset + j] = RequestTiming(finish_s=end_s, first_token_s=first_s, last_token_s=last)
            kv_batches.append(kv)
            offset += len(batch)
            bar.update(len(batch))
        elapsed = time.perf_counter() - t0
        bar.close()
        return RunOutput(
            elapsed_s=elapsed,
            returned_tokens=returned,
            timings=timings,
            latency_source="HF: host clock after a device sync at every generated step (StoppingCriteria); "
            "a request finishes when its batch's generate() returns",
            kv=summarize_hf_kv(kv_batches, mode, self.hf.config, self.model.dtype),
            memory=self.memory_figures(),
        )

    def _largest_batch(self, requests: Sequence[Request]) -> tuple[int, dict[str, Any]]:
        """The largest batch size whose most demanding batch of this workload completes. Two small batches
        give the memory per row, which gives a first guess; from it, steps that double until a batch
        fails (or fits), then bisection. Without memory figures (CPU): doubling from 1, then bisection.
        An out-of-memory is a data point, not a failure (unless batch 1 does not fit)."""
        probes: list[dict[str, Any]] = []
        peaks: dict[int, int] = {}
        n, lo, hi = len(requests), 0, None

        def probe(size: int) -> None:
            nonlocal lo, hi
            candidates = batches(requests, size)
            # Memory grows with rows x (width + new tokens), prefill activations with width: probe the
            # batches that lead on each measure.
            measures = (
                padded_slots,
                lambda b: len(b) * max(r.prompt_len for r in b),
                lambda b: len(b) * max(r.output_len for r in b),
            )
            worst_batches = list({id(b): b for b in (max(candidates, key=m) for m in measures)}.values())
            self._reset_peak()
            t = time.perf_counter()
            ok, error = True, None
            for worst in worst_batches:
                try:
                    self._generate(worst, t)
                except ScenarioOOM as e:
                    ok, error = False, str(e).split(":")[0]
                    break
            record = {"batch_size": size, "batches_probed": len(worst_batches), "fits": ok}
            record["seconds"] = time.perf_counter() - t
            peak = self._peak_bytes()
            if peak is not None:
                record["torch_peak_allocated_mib"] = peak / 2**20
                if ok:
                    peaks[size] = peak
            if error:
                record["error"] = error
            probes.append(record)
            if ok:
                lo = max(lo, size)
            else:
                hi = size if hi is None else min(hi, size)

        for size in sorted({min(n, 4), min(n, 16)}):
            probe(size)
            if hi is not None:
                break
        budget, (small, large) = self._budget_bytes(), (sorted(peaks) + [0, 0])[:2]
        slope = (peaks[large] - peaks[small]) / (large - small) if large > small else 0
        if hi is None and lo < n and budget and slope > 0:
            guess = max(lo + 1, min(n, int(large + (budget * 0.95 - peaks[large]) / slope)))
            probe(guess)
            step = max(1, guess // 16)
            while hi is None and lo < n:  # the guess fitted: step up until a batch fails
                probe(min(n, lo + step))
                step *= 2
            while hi is not None and hi - step > lo:  # the guess failed: step down until one fits
                size = hi - step
                probe(size)
                if lo == size:
                    break
                step *= 2
        size = max(1, lo * 2)
        while hi is None and lo < n:
            probe(min(n, size))
            size *= 2
        while hi is not None and hi - lo > 1:
            probe((lo + hi) // 2)
        if lo == 0:
            raise ScenarioOOM("out of memory even at batch size 1")
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
        capacity = {
            "max_batch": lo,
            "first_failing_batch": hi,
            "bounded_by": "memory" if hi is not None else "workload size (every request fit in one batch)",
            "memory_fraction": self.scenario.memory_fraction,
            "probes": probes,
        }
        return lo, capacity

    def _reset_peak(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def _peak_bytes(self) -> int | None:
        return self.torch.cuda.max_memory_allocated() if self.device.type == "cuda" else None

    def _budget_bytes(self) -> int | None:
        """What the allocator may hold: the device's memory times the scenario's fraction."""
        if self.device.type != "cuda":
            return None
        total = self.torch.cuda.get_device_properties(self.device).total_memory
        return int(total * (self.scenario.memory_fraction or 1.0))

    def generate_kwargs(self, batch: Sequence[Request]) -> dict[str, Any]:
        """generate() arguments for one batch: left-padded ids, exact lengths (EOS suppressed by
        min_new_tokens), the workload's sampling and, for static-cache, a cache of max_model_len."""
        torch = self.torch
        from transformers import StaticCache

        width = max(r.prompt_len for r in batch)
        new = max(r.output_len for r in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, r in enumerate(batch):
            ids[row, width - r.prompt_len :] = torch.tensor(r.prompt_ids)
            mask[row, width - r.prompt_len :] = 1
        kwargs: dict[str, Any] = {
            "input_ids": ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "max_new_tokens": new,
            "min_new_tokens": new,
            "pad_token_id": self.pad_id,
            "use_cache": True,
            **sampling_kwargs(self.sampling),
        }
        if self.scenario.resolved_mode == "static-cache":
            # Reserve the whole max model length up front, as a static allocator does.
            kwargs["past_key_values"] = StaticCache(config=self.hf.config, max_cache_len=self.model.max_model_len)
        return kwargs

    def _generate(self, batch: Sequence[Request], t0: float):
        """One generate() call over a left-padded batch. Returns per-row token counts, the batch's first
        token time, per-step times, the end time (all relative to t0) and what the KV cache held."""
        torch = self.torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        runner = self

        class StepClock(StoppingCriteria):
            """Timestamps each generated step; never stops generation."""

            def __init__(self) -> None:
                self.times: list[float] = []

            def __call__(self, input_ids, scores, **kwargs):
                runner._sync()
                self.times.append(time.perf_counter() - t0)
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        kwargs = self.generate_kwargs(batch)
        width, new = kwargs["input_ids"].shape[1], kwargs["max_new_tokens"]
        clock = StepClock()
        try:
            with torch.inference_mode():
                out = self.hf.generate(
                    **kwargs, stopping_criteria=StoppingCriteriaList([clock]), return_dict_in_generate=True
                )
            self._sync()
        except torch.OutOfMemoryError as e:
            kwargs.clear()
            torch.cuda.empty_cache()
            raise ScenarioOOM(
                f"out of memory at batch size {len(batch)} (prompt width {width}, {new} new tokens): {e}"
            ) from None
        end = time.perf_counter() - t0
        counts = []
        for r, seq in zip(batch, out.sequences[:, width:].tolist()):  # one copy to the host per batch
            # Tokens up to the first end-of-sequence (EOS is suppressed, so normally all of them).
            n = next((k for k, t in enumerate(seq) if t in self.eos_ids), len(seq))
            counts.append(min(n, r.output_len))
        kv = hf_batch_kv(out.past_key_values, batch, width, new)
        del out
        first = clock.times[0] if clock.times else end
        return counts, first, clock.times, end, kv


def padded_slots(batch: Sequence[Request]) -> int:
    """Token slots a left-padded batch's cache grows to: rows x (longest prompt + longest output)."""
    return len(batch) * (max(r.prompt_len for r in batch) + max(r.output_len for r in batch))


def sampling_kwargs(sampling: Workload) -> dict[str, Any]:
    if sampling.temperature > 0:
        return {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
    return {"do_sample": False}


def _progress(total: int, desc: str, disable: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="req", disable=disable, leave=False, mininterval=1.0)
