"""Hugging Face transformers `generate()`: sequential, static padded batches, or a StaticCache.

Every batch is left-padded to its longest prompt and generates to its longest output (EOS suppressed
with min_new_tokens); a request's useful tokens are its own output length. The KV cache each batch
held is read from the cache object itself, not computed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.config import Workload
from bench.results.sections import KvBatches, Probe
from bench.stacks.base import LoadedModel, RequestTiming, Runner, RunOutput
from bench.stacks.hf import generation
from bench.stacks.hf.capacity import ScenarioOOM, largest_batch, padded_slots
from bench.stacks.hf.kv import hf_batch_kv, summarize_hf_kv
from bench.stacks.hf.options import HfScenario
from bench.workload import Request, batches, distinct_outputs, per_sample

__all__ = ["HfRunner", "ScenarioOOM"]


class HfRunner(Runner):
    scenario: HfScenario
    sampler = None  # the timed run's sampler (set_probe)

    def __init__(self, model: LoadedModel, scenario: HfScenario) -> None:
        super().__init__(model, scenario)
        self.warmed: set[tuple] = set()  # shapes already warmed up on this loaded model

    @staticmethod
    def engine_key(model: LoadedModel, scenario) -> tuple:
        # One set of weights serves every mode, batch size and max length.
        return (model.path, model.dtype, model.device, tuple(sorted(scenario.engine_settings().items())))

    def load(self) -> dict[str, float]:
        import torch

        if self.model.device == "cuda":
            if self.scenario.memory_fraction:
                torch.cuda.set_per_process_memory_fraction(self.scenario.memory_fraction)
            torch.backends.cuda.enable_cudnn_sdp(self.scenario.cudnn_attention)
        t = time.perf_counter()
        s = self.scenario
        self.hf = generation.load(self.model.path, self.model.dtype, self.model.device, s.device_map, s.ranks)
        return {"load_s": time.perf_counter() - t}

    def settle(self) -> None:
        # torch's caching allocator keeps what the last scenario's batches grew to (70 GiB after n = 6
        # samples on an H100) until it is emptied; NVML would count it as this scenario's.
        if getattr(self, "hf", None) is not None:
            self.hf.reset_peak()

    def set_probe(self, sampler) -> None:
        # Paged mode reports its pool usage through the sampler; `batch_size: max` marks its search.
        self.sampler = sampler

    def engine_alive(self) -> bool:
        """False once a tensor-parallel rank has exited."""
        hf = getattr(self, "hf", None)
        return hf is None or hf.ranks is None or hf.ranks.alive()

    def close(self) -> None:
        if getattr(self, "hf", None) is not None:
            self.hf.close()
        self.hf = None
        torch = sys.modules.get("torch")
        if torch is not None and self.model.device == "cuda":
            torch.cuda.empty_cache()
            if self.scenario.memory_fraction:
                torch.cuda.set_per_process_memory_fraction(1.0)  # the cap is process-wide
            torch.backends.cuda.enable_cudnn_sdp(True)  # and so is the choice of attention kernels: torch's own

    # --- timed run -------------------------------------------------------------------------------------

    def _size(self) -> int | None:
        """Rows per batch; None for `batch_size: max` (searched)."""
        return 1 if self.scenario.resolved_mode == "sequential" else self.scenario.resolved_batch_size

    def run(self, requests: Sequence[Request], sampling: Workload, *, warmup: bool = False) -> RunOutput:
        self.sampling = sampling
        self.hf.seed(sampling.seed)
        if not self.scenario.batched:
            from bench.stacks.hf.paged import run_paged

            return run_paged(self.hf, requests, sampling, self.sampler, warmup=warmup)
        size = self._size()
        if size is not None:
            return self._run_batches(requests, size, warmup)
        if warmup:
            return self._run_batches(requests, len(requests), warmup)
        return self._run_largest(requests)

    def warm_up(self, warmup: Sequence[Request], requests: Sequence[Request], sampling: Workload) -> float | None:
        """The warm-up requests, then the timed run's most demanding batch once, which takes a first pass's
        one-off costs (the allocator growing, kernels loading; with `cudnn_attention`, a plan for every
        shape, a quarter of the later speed on an H100) out of the timed run."""
        size = self._size()
        if size is None or not self.scenario.batched or not requests:
            # `batch_size: max` probes full-size batches before its run; paged has no batches
            return super().warm_up(warmup, requests, sampling)
        worst = max(batches(requests, size), key=padded_slots)
        shape = self._shape(worst, sampling)
        if shape in self.warmed:  # an earlier scenario (or repeat) on this model ran this very shape
            self.warmup_shared = True
            return None
        seconds = super().warm_up(warmup, requests, sampling)
        self.sampling = sampling
        t = time.perf_counter()
        self.generate_batch(worst, t)
        self.hf.sync()
        self.warmed.add(shape)
        return (seconds or 0.0) + time.perf_counter() - t

    def _shape(self, batch: Sequence[Request], sampling: Workload) -> tuple:
        """What a warm-up on `batch` warms: the mode, the padded batch's rows, width and new tokens, the
        sampling path and, for a static cache, its length."""
        width, new = max(r.prompt_len for r in batch), max(r.output_len for r in batch)
        cache = self.model.max_model_len if self.scenario.resolved_mode == "static-cache" else None
        return (
            self.scenario.resolved_mode,
            len(batch),
            width,
            new,
            sampling.temperature > 0,
            sampling.samples_per_prompt,
            sampling.beam_width,
            cache,
        )

    def _run_largest(self, requests: Sequence[Request]) -> RunOutput:
        """batch_size: max. Search the largest batch, then run the workload at it; if a batch the search
        did not probe runs out of memory, step the size down and run again. Every attempt is recorded."""
        if self.sampler is not None:
            self.sampler.mark("capacity search")  # charts show it apart from the timed run
        capacity = largest_batch(requests, _Device(self), self.scenario.memory_fraction)
        if self.hf.on_gpu:
            self.hf.torch.cuda.empty_cache()
        if self.sampler is not None:
            self.sampler.mark("run")
        size = capacity.max_batch
        while True:
            try:
                out = self._run_batches(requests, size, warmup=False)
                break
            except ScenarioOOM as e:
                capacity.probes.append(Probe(batch_size=size, fits=False, during="full run", error=str(e)[:200]))
                size -= max(1, size // 8)
                if size < 1:
                    e.kv = KvBatches(capacity=capacity)  # keep the search's data in the failed result
                    raise
        capacity.max_batch = size
        out.kv.capacity = capacity
        return out

    def _run_batches(self, requests: Sequence[Request], size: int, warmup: bool) -> RunOutput:
        k = self.sampling.outputs_per_prompt
        kept = []  # each batch's rows and lengths: its distinct outputs are counted after the timed run
        returned = [0] * (len(requests) * k)  # one per output: each request's n samples in a row
        timings: list[RequestTiming | None] = [None] * (len(requests) * k)
        kv_batches = []
        self.hf.reset_peak()
        bar = _progress(len(requests), f"hf {self.scenario.resolved_mode} b={size}", disable=warmup)
        self.hf.sync()
        t0 = time.perf_counter()
        offset = 0
        for batch in batches(requests, size):
            counts, first_s, token_s, end_s, kv, rows = self.generate_batch(batch, t0)
            if k > 1:
                kept.append((rows, counts))
            for j, r in enumerate(per_sample(batch, k)):
                returned[offset + j] = counts[j]
                last = token_s[r.output_len - 1] if len(token_s) >= r.output_len else end_s
                timings[offset + j] = RequestTiming(finish_s=end_s, first_token_s=first_s, last_token_s=last)
            kv_batches.append(kv)
            offset += len(batch) * k
            bar.update(len(batch))
        elapsed = time.perf_counter() - t0
        bar.close()
        outputs = [row[:n] for rows, counts in kept for row, n in zip(rows, counts)]
        return RunOutput(
            elapsed_s=elapsed,
            returned_tokens=returned,
            timings=timings,
            latency_source="HF: host clock after a device sync at every generated step (StoppingCriteria); "
            "a request finishes when its batch's generate() returns",
            distinct_outputs=distinct_outputs(outputs, k) if k > 1 else None,
            kv=summarize_hf_kv(kv_batches, size, self.hf.model.config, self.model.dtype, self.hf.tensor_parallel),
            memory=self.hf.memory_figures(),
        )

    def generate_kwargs(self, batch: Sequence[Request]) -> dict[str, Any]:
        """generate() arguments for one batch: left-padded ids, exact lengths (EOS suppressed by
        min_new_tokens), the workload's sampling and, for static-cache, a cache of max_model_len."""
        torch = self.hf.torch
        from transformers import StaticCache

        width = max(r.prompt_len for r in batch)
        new = max(r.output_len for r in batch)
        ids = torch.full((len(batch), width), self.hf.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, r in enumerate(batch):
            ids[row, width - r.prompt_len :] = torch.tensor(r.prompt_ids)
            mask[row, width - r.prompt_len :] = 1
        kwargs: dict[str, Any] = {
            "input_ids": ids.to(self.hf.device),
            "attention_mask": mask.to(self.hf.device),
            "max_new_tokens": new,
            "min_new_tokens": new,
            "pad_token_id": self.hf.pad_id,
            "use_cache": True,
            **generation.sampling_kwargs(self.sampling),
        }
        if self.sampling.samples_per_prompt > 1:  # generate() expands each prompt into n rows
            kwargs["num_return_sequences"] = self.sampling.samples_per_prompt
        if self.sampling.beam_width > 1:  # and into num_beams rows, every beam returned
            kwargs |= {"num_beams": self.sampling.beam_width, "num_return_sequences": self.sampling.beam_width}
        if self.scenario.resolved_mode == "static-cache":
            # Reserve the whole max model length up front, as a static allocator does.
            kwargs["past_key_values"] = StaticCache(config=self.hf.model.config, max_cache_len=self.model.max_model_len)
        return kwargs

    def generate_batch(self, batch: Sequence[Request], t0: float):
        """One generate() call over a left-padded batch. Returns per-row token counts, the batch's first
        token time, per-step times, the end time (all relative to t0), what the KV cache held and the rows'
        generated token ids."""
        torch = self.hf.torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        hf = self.hf

        class StepClock(StoppingCriteria):
            """Timestamps each generated step; never stops generation."""

            def __init__(self) -> None:
                self.times: list[float] = []

            def __call__(self, input_ids, scores, **kwargs):
                hf.sync()
                self.times.append(time.perf_counter() - t0)
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        kwargs = self.generate_kwargs(batch)
        width, new = kwargs["input_ids"].shape[1], kwargs["max_new_tokens"]
        clock = StepClock()
        try:
            with torch.inference_mode():
                out = hf.generate(kwargs, stopping_criteria=StoppingCriteriaList([clock]), return_dict_in_generate=True)
            hf.sync()
        except torch.OutOfMemoryError as e:
            kwargs.clear()
            torch.cuda.empty_cache()
            raise ScenarioOOM(
                f"out of memory at batch size {len(batch)} (prompt width {width}, {new} new tokens): {e}"
            ) from None
        end = time.perf_counter() - t0
        counts = []
        per = self.sampling.outputs_per_prompt
        # generate() puts each prompt's n samples (or beams) in a row; one copy to the host per batch
        rows = out.sequences[:, width:].tolist()
        for r, seq in zip(per_sample(batch, per), rows):
            # Tokens up to the first end-of-sequence (EOS is suppressed, so normally all of them).
            n = next((i for i, t in enumerate(seq) if t in hf.eos_ids), len(seq))
            counts.append(min(n, r.output_len))
        kv = hf_batch_kv(out.past_key_values, batch, width, new, per, hf.tensor_parallel)
        del out
        first = clock.times[0] if clock.times else end
        return counts, first, clock.times, end, kv, rows

    # --- the cross-check's plain loop --------------------------------------------------------------------

    def plain_run(self, requests: Sequence[Request], sampling: Workload) -> tuple[int, float]:
        """generate() over the same left-padded batches: no stopping criteria, no sampler, one device sync
        at the end."""
        size = self._size() or len(requests)
        torch, hf = self.hf.torch, self.hf
        self.sampling = sampling
        hf.sync()
        t0 = time.perf_counter()
        tokens = 0
        with torch.inference_mode():
            for batch in batches(requests, size):
                kwargs = self.generate_kwargs(batch)
                out = hf.generate(kwargs)
                generated = out.shape[1] - kwargs["input_ids"].shape[1]
                tokens += sampling.outputs_per_prompt * sum(min(r.output_len, generated) for r in batch)
        hf.sync()
        return tokens, time.perf_counter() - t0


class _Device:
    """The capacity search's view of a runner: one padded batch at a time, and the allocator's figures."""

    def __init__(self, runner: HfRunner) -> None:
        self.runner = runner

    def generate(self, batch: Sequence[Request]) -> None:
        self.runner.generate_batch(batch, time.perf_counter())

    def reset_peak(self) -> None:
        self.runner.hf.reset_peak()

    def peak_bytes(self) -> int | None:
        return self.runner.hf.peak_bytes()

    def budget_bytes(self) -> int | None:
        """The device's memory times the scenario's fraction."""
        hf = self.runner.hf
        if not hf.on_gpu:
            return None
        total = hf.torch.cuda.get_device_properties(hf.device).total_memory
        return int(total * (self.runner.scenario.memory_fraction or 1.0))


def _progress(total: int, desc: str, disable: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="req", disable=disable, leave=False, mininterval=1.0)
