"""Where a run's GPU memory went: weights, KV reserved, KV holding tokens, activations, runtime overhead.

This is what explains why NVML shows vLLM "using" most of the GPU: it reserves its KV pool up front.
Every entry says how it was obtained (read from the framework, NVML, or computed from other entries).
"""

from __future__ import annotations

from pathlib import Path

from bench.results.schema import Memory
from bench.results.sections import Breakdown, Entry, KvBatches, KvPool

MIB = 2**20


def weights_on_disk_mib(model_dir: Path) -> float:
    return sum(p.stat().st_size for p in model_dir.glob("*.safetensors")) / MIB


def weights_mib(memory: Memory, model_dir: Path, ranks: int = 1) -> tuple[float, str]:
    """The weights' size on the (first) device and how it was obtained: read on the device (HF; a
    tensor-parallel rank's shard) or the files' size (vLLM), split evenly over `ranks`."""
    if memory.weights_mib is not None:
        return memory.weights_mib, "read: parameters and buffers on the device" + (" (rank 0's shard)" * (ranks > 1))
    if ranks > 1:
        return weights_on_disk_mib(model_dir) / ranks, f"computed: safetensors size on disk / {ranks} ranks"
    return weights_on_disk_mib(model_dir), "computed: safetensors size on disk"


def _entry(mib: float | None, how: str) -> Entry | None:
    return None if mib is None else Entry(mib=round(mib, 1), how=how)


def memory_breakdown(memory: Memory, kv: KvBatches | KvPool | None, model_dir: Path) -> Breakdown | None:
    """None on a host without an NVIDIA device: there is no GPU memory to break down. A run split over
    several ranks is broken down on its first device, which holds 1/ranks of the weights and the KV."""
    if memory.peak_device_used_mib is None:
        return None
    if memory.peak_process_used_mib is not None:
        used, used_how = memory.peak_process_used_mib, "NVML per-process used (peak)"
    else:
        used = memory.peak_device_used_mib - (memory.device_used_before_mib or 0.0)
        used_how = "NVML device used (peak) minus used before the run"
    ranks = (kv.ranks if kv is not None else None) or 1
    weights, weights_how = weights_mib(memory, model_dir, ranks)
    kv_reserved = kv.reserved_bytes_peak / MIB / ranks if kv is not None and kv.reserved_bytes_peak else None
    kv_live = None
    if isinstance(kv, KvBatches) and kv.live_bytes_at_peak is not None:
        kv_live = kv.live_bytes_at_peak / MIB / ranks
    elif kv_reserved is not None and kv.utilization_at_peak is not None:
        kv_live = kv_reserved * kv.utilization_at_peak
    out: dict[str, Entry | None] = {
        "process_used": _entry(used, used_how),
        "weights": _entry(weights, weights_how),
        "kv_reserved": _entry(
            kv_reserved, ((kv.source or "") + (f"; / {ranks} ranks" if ranks > 1 else "")) if kv is not None else ""
        ),
        "kv_live": _entry(kv_live, "computed: tokens held at the busiest moment x bytes per token"),
    }
    if memory.torch_peak_allocated_mib is not None:
        activations = memory.torch_peak_allocated_mib - weights - (kv_reserved or 0.0)
        out["activations"] = _entry(max(0.0, activations), "computed: torch peak allocated - weights - KV reserved")
        overhead = used - memory.torch_peak_reserved_mib
        out["runtime_overhead"] = _entry(
            overhead, "computed: NVML used - torch peak reserved (CUDA context, allocator slack)"
        )
        out["allocator_slack"] = _entry(
            memory.torch_peak_reserved_mib - memory.torch_peak_allocated_mib,
            "read: torch peak reserved - peak allocated",
        )
    else:
        rest = used - weights - (kv_reserved or 0.0)
        out["other"] = _entry(
            rest, "computed: used - weights - KV reserved (activations, CUDA graphs, CUDA context, allocator slack)"
        )
    return Breakdown(**out)
