"""HF's KV accounting: read from the cache object of every generate() batch.

A padded batch's rows each hold cache slots up to the batch's longest prompt plus its longest output; the
slots that held no token are split by cause (prompt padding, rows already finished, never reached).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bench.kv import final_kv_tokens, kv_bytes_per_token
from bench.results.sections import KvBatches


def cache_bytes(cache) -> tuple[int, int]:
    """(bytes held by all key/value tensors, cached sequence length) of a transformers Cache."""
    total, length = 0, 0
    for layer in cache.layers:
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if t is not None and hasattr(t, "numel"):
                total += t.numel() * t.element_size()
                length = max(length, t.shape[-2])
    return total, length


def hf_batch_kv(cache, batch: Sequence, width: int, new: int, samples: int = 1, ranks: int = 1) -> dict[str, int]:
    """Accounting for one generate() batch: every row holds `slots` token positions of KV. With n samples
    per prompt, generate() expands each prompt into n rows, each holding the prompt's KV again. With
    tensor parallelism `cache` is rank 0's, holding its share of the heads: every rank holds as much."""
    reserved_bytes, slots = cache_bytes(cache)
    reserved_bytes *= ranks
    rows = len(batch) * samples
    reached = width + new - 1
    return {
        "rows": rows,
        "reserved_bytes": reserved_bytes,
        "reserved_tokens": rows * slots,
        "live_tokens": samples * sum(final_kv_tokens(r.prompt_len, r.output_len) for r in batch),
        "prompt_padding_tokens": samples * sum(width - r.prompt_len for r in batch),
        "finished_row_tokens": samples * sum(new - r.output_len for r in batch),
        "unreached_tokens": rows * max(0, slots - reached),
        "prompt_tokens": samples * sum(r.prompt_len for r in batch),
    }


def summarize_hf_kv(batches: Iterable[dict[str, int]], size: int, config, dtype: str, ranks: int = 1) -> KvBatches:
    """The run's accounting from its batches' (`size` rows each, the last maybe fewer), over all `ranks`."""
    batches = list(batches)
    bpt = kv_bytes_per_token(config.to_dict(), dtype)
    total = {k: sum(b[k] for b in batches) for k in batches[0] if k != "rows"}
    peak = max(batches, key=lambda b: b["reserved_bytes"])
    gap = total["prompt_padding_tokens"] + total["finished_row_tokens"] + total["unreached_tokens"]
    return KvBatches(
        source="reserved: read from the cache object's key/value tensors after each batch"
        + (f" (rank 0's share of the heads x {ranks} ranks)" if ranks > 1 else "")
        + "; live: computed from the requests' lengths (prompt + output - 1 per request)",
        ranks=ranks if ranks > 1 else None,
        bytes_per_token=bpt,
        batch_size=size,
        bytes_per_token_read=total["reserved_bytes"] / total["reserved_tokens"] if total["reserved_tokens"] else None,
        batches=len(batches),
        reserved_bytes_peak=peak["reserved_bytes"],
        live_bytes_at_peak=peak["live_tokens"] * bpt,
        **{f"{k}_total": v for k, v in total.items()},
        utilization=total["live_tokens"] / total["reserved_tokens"] if total["reserved_tokens"] else None,
        utilization_at_peak=peak["live_tokens"] / peak["reserved_tokens"] if peak["reserved_tokens"] else None,
        # The gap accounts for every reserved slot that held no live token.
        accounted=total["live_tokens"] + gap == total["reserved_tokens"],
    )
