"""vLLM's KV accounting: the pool from the engine, its use sampled during the run."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.kv import block_fill, final_kv_tokens
from bench.results.sections import KvPool


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
    prefix: dict[str, float] | None = None,
    ranks: int = 1,
) -> KvPool:
    """The run's accounting; `prefix`: the run's prefix-cache counters (prompt tokens queried, hit);
    `ranks`: the workers the pool is split over (every one holds `num_blocks`, each its share of a block)."""
    pool_tokens = num_blocks * block_size
    fill = block_fill(requests, block_size)
    longest = max(final_kv_tokens(r.prompt_len, r.output_len) for r in requests)
    return KvPool(
        source="engine: num_blocks, block_size, prefix caching (cache_config); usage %, running, waiting, "
        "preemptions (engine metrics sampled during the run). Computed: bytes from the model config, "
        "block fill from the requests' lengths",
        bytes_per_token=bpt,
        block_size=block_size,
        pool_blocks=num_blocks,
        pool_tokens=pool_tokens,
        reserved_bytes_peak=pool_tokens * bpt,  # computed: engine blocks x block size x bytes/token
        prefix_caching=prefix_caching,
        engine_samples=samples,
        peak_usage=peak_usage,  # fraction of the pool's blocks in use (engine)
        peak_running=peak_running,
        peak_waiting=peak_waiting,
        preemptions=preemptions,
        block_fill=fill,  # computed
        # In-use blocks x their fill: the share of the whole pool holding tokens at the busiest moment.
        utilization_at_peak=peak_usage * fill if peak_usage is not None else None,
        # The share of allocated blocks holding tokens: what the vLLM paper calls KV utilisation.
        utilization=fill,
        max_sequences_longest=pool_tokens // (math.ceil(longest / block_size) * block_size),
        prefix_cache_queries=(prefix or {}).get("queries"),
        prefix_cache_hits=(prefix or {}).get("hits"),
        ranks=ranks if ranks > 1 else None,
    )
