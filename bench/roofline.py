"""Memory-bandwidth roofline for decoding: the bytes each run had to read, over the bandwidth measured on
the same device in the same run, give a floor on its time; the fraction achieved is floor / measured.

Every decode step reads the weights once and the KV cache of every sequence in the batch. What a stack's
attention reads is its own layout: padded batches read every slot of the cache tensors (padding and
finished rows included; a static cache its whole length); a paged engine reads only the live tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.results.sections import Roofline
from bench.workload import Request, batches


def measure_bandwidth(torch, device: str, size_mib: int = 1024, iters: int = 20) -> float | None:
    """Device-to-device copy bandwidth in GB/s (bytes read + written), or None off the GPU."""
    if device != "cuda":
        return None
    n = size_mib * 2**20
    src = torch.empty(n, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000.0
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n * iters / seconds / 1e9


def bandwidth_in_subprocess(timeout_s: float = 120.0) -> float | None:
    """Measure in a child process, so no CUDA context stays in the process that then runs an engine."""
    import subprocess
    import sys

    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.roofline"], capture_output=True, text=True, timeout=timeout_s, check=True
        )
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None


def padded_decode_bytes(
    requests: Sequence[Request], batch_size: int, weights: int, bpt: int, cache_len: int | None = None
) -> tuple[int, int]:
    """(bytes, decode steps) for static batches in order; `cache_len` for a StaticCache's fixed length."""
    total = steps = 0
    for batch in batches(requests, batch_size):
        width = max(r.prompt_len for r in batch)
        new = max(r.output_len for r in batch)
        for k in range(new - 1):  # the first token comes from the prefill
            slots = cache_len if cache_len else width + k + 1
            total += weights + len(batch) * slots * bpt
        steps += new - 1
    return total, steps


def paged_decode_bytes(requests: Sequence[Request], weights: int, bpt: int, max_running: int) -> tuple[int, int]:
    """A lower bound for a continuous-batching engine: live tokens only, and the fewest steps it could
    take (the longest request, or all output tokens at `max_running` per step)."""
    kv = sum(sum(r.prompt_len + k for k in range(1, r.output_len)) for r in requests) * bpt
    steps = max(
        max(r.output_len for r in requests) - 1,
        math.ceil(sum(r.output_len - 1 for r in requests) / max(1, max_running)),
    )
    return kv + steps * weights, steps


def paged_layout(requests: Sequence[Request], weights: int, bpt: int, max_running: int) -> tuple[int, int, str]:
    """A continuous-batching engine's roofline layout: live tokens only, in the fewest steps it could take."""
    read, steps = paged_decode_bytes(requests, weights, bpt, max_running)
    return read, steps, "live tokens only, fewest possible steps (a lower bound)"


def roofline(read: int, steps: int, how: str, bandwidth_gbps: float | None, elapsed_s: float) -> Roofline:
    """The floor that `read` decode bytes put on a run's time at the measured bandwidth, and the fraction
    of it the run achieved. What was read is the stack's own layout (its scenario's `roofline_layout`)."""
    out = Roofline(decode_bytes=read, decode_steps=steps, bytes_counted=how, bandwidth_gbps=bandwidth_gbps)
    if bandwidth_gbps:
        out.floor_s = read / (bandwidth_gbps * 1e9)
        out.fraction_of_roofline = out.floor_s / elapsed_s
    return out


if __name__ == "__main__":
    import torch

    print(measure_bandwidth(torch, "cuda") if torch.cuda.is_available() else "none")
