"""KV-cache arithmetic and accounting: what each stack reserved versus what held tokens.

A token's KV state is 2 (key and value) x layers x KV heads x head dim x bytes per element. A request
of prompt p and output o holds p + o - 1 tokens of KV when it finishes: the last sampled token is
never fed back through the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8": 1, "fp8": 1}


def kv_geometry(config: dict[str, Any]) -> dict[str, Any]:
    """Layers, KV heads and head dim from a transformers config dict (GPT-2 and Llama-style names)."""
    text = config.get("text_config") or config
    layers = text.get("num_hidden_layers") or text.get("n_layer")
    heads = text.get("num_attention_heads") or text.get("n_head")
    hidden = text.get("hidden_size") or text.get("n_embd")
    if not (layers and heads and hidden):
        raise ValueError("config lacks layers/heads/hidden size: cannot size its KV cache")
    if text.get("kv_lora_rank"):
        raise ValueError("multi-head latent attention (kv_lora_rank) is not supported by this arithmetic")
    kv_heads = text.get("num_key_value_heads") or (1 if text.get("multi_query") else heads)
    head_dim = text.get("head_dim") or hidden // heads
    kind = "mha" if kv_heads == heads else ("mqa" if kv_heads == 1 else "gqa")
    return {
        "layers": int(layers),
        "kv_heads": int(kv_heads),
        "head_dim": int(head_dim),
        "attention": kind,
        "sliding_window": text.get("sliding_window") if text.get("use_sliding_window", True) else None,
    }


def kv_bytes_per_token(config: dict[str, Any], dtype: str) -> int:
    g = kv_geometry(config)
    return 2 * g["layers"] * g["kv_heads"] * g["head_dim"] * DTYPE_BYTES[dtype]


def final_kv_tokens(prompt_len: int, output_len: int) -> int:
    return prompt_len + output_len - 1


# --- HF: read from the cache object ---------------------------------------------------------------------


def cache_bytes(cache) -> tuple[int, int]:
    """(bytes held by all key/value tensors, cached sequence length) of a transformers Cache."""
    total, length = 0, 0
    for layer in cache.layers:
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if t is not None and hasattr(t, "numel"):
                total += t.numel() * t.element_size()
                length = max(length, t.shape[-2])
    return total, length


def hf_batch_kv(cache, batch: Sequence, width: int, new: int) -> dict[str, int]:
    """Accounting for one generate() batch: every row holds `slots` token positions of KV."""
    reserved_bytes, slots = cache_bytes(cache)
    rows = len(batch)
    reached = width + new - 1
    return {
        "rows": rows,
        "reserved_bytes": reserved_bytes,
        "reserved_tokens": rows * slots,
        "live_tokens": sum(final_kv_tokens(r.prompt_len, r.output_len) for r in batch),
        "prompt_padding_tokens": sum(width - r.prompt_len for r in batch),
        "finished_row_tokens": sum(new - r.output_len for r in batch),
        "unreached_tokens": rows * max(0, slots - reached),
    }


def summarize_hf_kv(batches: Iterable[dict[str, int]], mode: str, config, dtype: str) -> dict[str, Any]:
    batches = list(batches)
    bpt = kv_bytes_per_token(config.to_dict(), dtype)
    total = {k: sum(b[k] for b in batches) for k in batches[0] if k != "rows"}
    peak = max(batches, key=lambda b: b["reserved_bytes"])
    gap = total["prompt_padding_tokens"] + total["finished_row_tokens"] + total["unreached_tokens"]
    return {
        "stack": "hf",
        "mode": mode,
        "source": "reserved: read from the cache object's key/value tensors after each batch; "
        "live: computed from the requests' lengths (prompt + output - 1 per request)",
        "bytes_per_token": bpt,
        "bytes_per_token_read": total["reserved_bytes"] / total["reserved_tokens"]
        if total["reserved_tokens"]
        else None,
        "batches": len(batches),
        "reserved_bytes_peak": peak["reserved_bytes"],
        "live_bytes_at_peak": peak["live_tokens"] * bpt,
        **{f"{k}_total": v for k, v in total.items()},
        "utilization": total["live_tokens"] / total["reserved_tokens"] if total["reserved_tokens"] else None,
        "utilization_at_peak": peak["live_tokens"] / peak["reserved_tokens"] if peak["reserved_tokens"] else None,
        # The gap accounts for every reserved slot that held no live token.
        "accounted": total["live_tokens"] + gap == total["reserved_tokens"],
    }


# --- vLLM: pool from the engine, usage sampled during the run --------------------------------------------


def block_fill(requests: Sequence, block_size: int) -> float:
    """Share of the allocated blocks' slots that hold tokens once each request is complete (the rest is
    the partly filled last block of each sequence)."""
    tokens = [final_kv_tokens(r.prompt_len, r.output_len) for r in requests]
    slots = sum(math.ceil(t / block_size) * block_size for t in tokens)
    return sum(tokens) / slots


def summarize_vllm_kv(
    *,
    num_blocks: int,
    block_size: int,
    bpt: int,
    prefix_caching: bool,
    requests: Sequence,
    peak_usage: float | None,
    peak_running: float | None,
    peak_waiting: float | None,
    preemptions: float | None,
    samples: int,
) -> dict[str, Any]:
    pool_tokens = num_blocks * block_size
    fill = block_fill(requests, block_size)
    longest = max(final_kv_tokens(r.prompt_len, r.output_len) for r in requests)
    return {
        "stack": "vllm",
        "mode": "continuous",
        "source": "engine: num_blocks, block_size, prefix caching (cache_config); usage %, running, waiting, "
        "preemptions (engine metrics sampled during the run). Computed: bytes from the model config, "
        "block fill from the requests' lengths",
        "bytes_per_token": bpt,
        "block_size": block_size,
        "pool_blocks": num_blocks,
        "pool_tokens": pool_tokens,
        "reserved_bytes_peak": pool_tokens * bpt,  # computed: engine blocks x block size x bytes/token
        "prefix_caching": prefix_caching,
        "engine_samples": samples,
        "peak_usage": peak_usage,  # fraction of the pool's blocks in use (engine)
        "peak_running": peak_running,
        "peak_waiting": peak_waiting,
        "preemptions": preemptions,
        "block_fill": fill,  # computed
        # In-use blocks x their fill: the share of the whole pool holding tokens at the busiest moment.
        "utilization_at_peak": peak_usage * fill if peak_usage is not None else None,
        # The share of allocated blocks holding tokens: what the vLLM paper calls KV utilisation.
        "utilization": fill,
        "max_sequences_longest": pool_tokens // (math.ceil(longest / block_size) * block_size),
    }
