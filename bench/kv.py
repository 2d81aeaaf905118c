"""KV-cache arithmetic every stack shares; each stack's own accounting lives in its folder.

A token's KV state is 2 (key and value) x layers x KV heads x head dim x bytes per element. A request
of prompt p and output o holds p + o - 1 tokens of KV when it finishes: the last sampled token is
never fed back through the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


def block_fill(requests: Sequence, block_size: int) -> float:
    """Share of the allocated blocks' slots that hold tokens once each request is complete (the rest is
    the partly filled last block of each sequence)."""
    tokens = [final_kv_tokens(r.prompt_len, r.output_len) for r in requests]
    slots = sum(math.ceil(t / block_size) * block_size for t in tokens)
    return sum(tokens) / slots
