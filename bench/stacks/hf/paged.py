"""HF mode `paged`: transformers' own continuous batching over a paged KV cache.

Every request is added at once with its own max_new_tokens and EOS disabled; per-token timestamps come
from transformers (time.perf_counter in this process). The pool is read from the manager's cache; its
usage is sampled during the run. The API is young and moves between releases: what the installed
version does not expose is recorded as missing, never guessed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bench.config import Workload
from bench.kv import block_fill, kv_bytes_per_token
from bench.results.sections import KvPool
from bench.stacks.base import RequestTiming, RunOutput
from bench.stacks.hf.generation import Loaded, sampling_kwargs
from bench.workload import Request


class PagedUnavailable(RuntimeError):
    pass


def _cache(manager):
    processor = getattr(manager, "batch_processor", None)
    return getattr(processor, "cache", None)


def _pool(cache, manager) -> dict[str, Any]:
    """Pool size as this transformers version exposes it: one cache tensor (5.19) or per-layer lists (5.17)."""
    tensors = [cache.cache_tensor] if hasattr(cache, "cache_tensor") else []
    for name in ("key_cache", "value_cache"):
        tensors += [t for t in getattr(cache, name, None) or [] if hasattr(t, "numel")]
    page = getattr(getattr(manager, "continuous_batching_config", None), "page_size", None)
    return {
        "pool_bytes": sum(t.numel() * t.element_size() for t in tensors) or None,
        "pool_blocks": getattr(cache, "num_blocks", None),
        "block_size": getattr(cache, "block_size", None) or page,
    }


def _usage_reader(cache):
    """A callable giving the pool's used fraction, or None when this version exposes none."""
    if hasattr(cache, "compute_free_capacity"):
        return lambda: 1.0 - float(cache.compute_free_capacity(relative=True))
    if hasattr(cache, "get_num_free_blocks") and getattr(cache, "num_blocks", None):
        return lambda: 1.0 - cache.get_num_free_blocks() / cache.num_blocks
    return None


def _accepts(fn, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def run_paged(
    hf: Loaded, requests: Sequence[Request], sampling: Workload, sampler=None, warmup: bool = False
) -> RunOutput:
    """Every request at once through transformers' continuous batching; `sampler` reads the pool's usage
    during a timed run."""
    from transformers import GenerationConfig

    if not hasattr(hf.model, "continuous_batching_context_manager"):
        import transformers

        raise PagedUnavailable(f"transformers {transformers.__version__} has no continuous batching (generate_batch)")
    config = GenerationConfig(
        max_new_tokens=max(r.output_len for r in requests),
        eos_token_id=-1,
        pad_token_id=hf.pad_id,
        **sampling_kwargs(sampling),
    )
    if hf.on_gpu:
        hf.torch.cuda.reset_peak_memory_stats()
    pool: dict[str, Any] = {}
    sampler = None if warmup else sampler
    with hf.model.continuous_batching_context_manager(generation_config=config, block=True, timeout=60) as manager:
        cache = _cache(manager)
        if cache is not None:
            pool = _pool(cache, manager)
            usage = _usage_reader(cache)
            if sampler is not None and usage is not None:
                sampler.engine_probe = lambda: {"kv_usage": usage()}
        stamped = _accepts(manager.add_request, "record_timestamps")
        hf.sync()
        t0 = time.perf_counter()
        results = _generate_all(manager, requests, stamped)
        hf.sync()
        elapsed = time.perf_counter() - t0
        if sampler is not None:
            sampler.engine_probe = None
    returned, timings = _per_request(results, requests, t0, elapsed)
    return RunOutput(
        elapsed_s=elapsed,
        returned_tokens=returned,
        timings=timings,
        latency_source="HF paged: transformers' per-token timestamps (record_timestamps)"
        if stamped
        else "HF paged: this transformers records no per-token times; every request counts the whole run",
        kv=None if warmup else _kv(hf, requests, pool, sampler),
        memory=hf.memory_figures(),
    )


def _generate_all(manager, requests: Sequence[Request], stamped: bool) -> dict[int, tuple[Any, Request]]:
    """Submit every request and wait for all of them: {request id: (output, request)}."""
    stamps_kw = {"record_timestamps": True} if stamped else {}
    submitted = {}
    for r in requests:
        rid = manager.add_request(list(r.prompt_ids), max_new_tokens=r.output_len, eos_token_id=-1, **stamps_kw)
        if rid is None:
            raise RuntimeError(f"transformers' continuous batching refused request {r.index}")
        submitted[rid] = r
    results = {}
    while len(results) < len(submitted):
        out = manager.get_result(timeout=1)
        if out is not None and out.is_finished():
            results[out.request_id] = (out, submitted[out.request_id])
        elif out is None and not manager.is_running():
            raise RuntimeError(
                f"continuous batching loop stopped with {len(submitted) - len(results)} requests unfinished"
            )
    return results


def _per_request(results, requests: Sequence[Request], t0: float, elapsed: float):
    """Tokens returned and timings, indexed like the requests."""
    returned = [0] * len(requests)
    timings = [RequestTiming(finish_s=elapsed)] * len(requests)
    position = {r.index: i for i, r in enumerate(requests)}
    errors = []
    for out, request in results.values():
        i = position[request.index]
        if out.error:
            errors.append(out.error)
        returned[i] = len(out.generated_tokens)
        stamps = getattr(out, "timestamps", None) or []
        if stamps:
            timings[i] = RequestTiming(
                finish_s=stamps[-1] - t0, first_token_s=stamps[0] - t0, last_token_s=stamps[-1] - t0
            )
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed in continuous batching: {errors[0]}")
    return returned, timings


def _kv(hf: Loaded, requests: Sequence[Request], pool: dict[str, Any], sampler) -> KvPool:
    peak_usage = sampler.engine_peak("kv_usage", {"run"}) if sampler is not None else None
    fill = block_fill(requests, pool["block_size"]) if pool.get("block_size") else None
    return KvPool(
        source="pool: read from transformers' PagedAttentionCache (cache tensor bytes, blocks, page size); "
        "usage: 1 - compute_free_capacity() sampled during the run; block fill computed from the lengths",
        bytes_per_token=kv_bytes_per_token(hf.model.config.to_dict(), hf.dtype),
        **pool,
        reserved_bytes_peak=pool.get("pool_bytes"),
        peak_usage=peak_usage,
        block_fill=fill,
        utilization=fill,
        utilization_at_peak=peak_usage * fill if peak_usage is not None and fill is not None else None,
    )
