"""vLLM's knobs. Imports no vLLM."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from bench.config import MAX_REQUESTS, ScenarioBase
from bench.roofline import paged_layout
from bench.stacks.vllm import STACK, kvprobe

DEFAULT_MAX_NUM_SEQS = 256  # vLLM's own default: the most sequences it schedules at once

# The knobs vLLM takes as engine arguments of the same name: `LLM(**args)` offline, `vllm serve --arg`
# online. Unset, vLLM's default holds.
ENGINE_ARGS = (
    "gpu_memory_utilization",
    "max_num_seqs",
    "block_size",
    "kv_cache_dtype",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "distributed_executor_backend",
)


def engine_args(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A scenario's engine settings as vLLM's engine arguments, the same offline and online: the knobs it
    sets, prefix caching and eager mode off unless it turns them on, and the sharing probe's scheduler."""
    args = {k: settings[k] for k in ENGINE_ARGS if settings.get(k) is not None}
    args["enable_prefix_caching"] = bool(settings.get("enable_prefix_caching"))
    args["enforce_eager"] = bool(settings.get("enforce_eager"))
    if settings.get("kv_sharing_probe"):
        args["scheduler_cls"] = kvprobe.SCHEDULER
    return args


def rank_count(settings: Mapping[str, Any]) -> int:
    """The processes the engine splits the model over: tensor x pipeline parallel."""
    return (settings.get("tensor_parallel_size") or 1) * (settings.get("pipeline_parallel_size") or 1)


def cpu_binding(device: str, ranks: int) -> dict[str, str]:
    """The CPU backend pins each rank's threads to cores and, on a host of one NUMA node, must be told
    which: the cores this process may use, split evenly between the ranks (unless the variable is set)."""
    if device != "cpu" or ranks == 1 or "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
        return {}
    cores = sorted(os.sched_getaffinity(0))
    per = len(cores) // ranks
    groups = (",".join(map(str, cores[i * per : (i + 1) * per])) for i in range(ranks))
    return {"VLLM_CPU_OMP_THREADS_BIND": "|".join(groups)}


class VllmScenario(ScenarioBase):
    stack: Literal["vllm"]
    gpu_memory_utilization: float | None = Field(default=None, gt=0.0, le=1.0)
    max_num_seqs: int | None = Field(default=None, ge=1, le=MAX_REQUESTS)
    enforce_eager: bool | None = None
    enable_prefix_caching: bool | None = None
    # CPU backend: VLLM_CPU_KVCACHE_SPACE (GiB)
    kv_cache_space_gib: int | None = Field(default=None, ge=1, le=1_000_000)
    block_size: int | None = Field(default=None, ge=1, le=4096)
    # The KV cache's element type: "auto" (the model's) or "fp8" (one byte: about twice the blocks).
    kv_cache_dtype: Literal["auto", "fp8"] | None = None
    # Split the model over GPUs of one host (vLLM's multiprocessing executor): tensor parallel within a
    # layer, pipeline parallel across layers; the engine uses tensor x pipeline GPUs.
    tensor_parallel_size: int | None = Field(default=None, ge=1, le=64)
    pipeline_parallel_size: int | None = Field(default=None, ge=1, le=64)
    # "mp": vLLM's processes on this host (its default); "ray": a Ray cluster the engine joins, so the GPUs
    # may be on several hosts (tensor parallel within a node, pipeline parallel across nodes).
    distributed_executor_backend: Literal["mp", "ray"] | None = None
    # Read memory saved by sharing inside the engine (logical vs physical KV blocks after every step; see
    # bench/stacks/vllm/kvprobe.py): vLLM's scheduler with one hook after each step.
    kv_sharing_probe: bool | None = None

    MODES: ClassVar[tuple[str, ...]] = STACK.modes
    BUDGET_KNOB: ClassVar[str] = "gpu_memory_utilization"

    def max_running(self) -> int:
        return self.max_num_seqs or DEFAULT_MAX_NUM_SEQS

    @property
    def ranks(self) -> int:
        return rank_count(self.__dict__)

    def placement_refusal(self, model_config: dict, gpus: int) -> str | None:
        if self.ranks == 1:
            return None
        tp, pp = self.tensor_parallel_size or 1, self.pipeline_parallel_size or 1
        split = f"tensor_parallel_size {tp} x pipeline_parallel_size {pp} needs {self.ranks}"
        cores = len(os.sched_getaffinity(0))
        if self.distributed_executor_backend == "ray":  # a Ray cluster's devices are not all here
            pass
        elif not gpus and self.ranks > cores:  # a CPU run: the ranks are processes, each pinned to its own cores
            return f"{split} cores; this host has {cores}"
        elif gpus and self.ranks > gpus:
            return f"{split} GPUs; this run sees {gpus}"
        heads = model_config.get("num_attention_heads")
        if isinstance(heads, int) and heads % tp:
            return f"tensor_parallel_size {tp} does not divide the model's {heads} attention heads"
        layers = model_config.get("num_hidden_layers")
        if isinstance(layers, int) and pp > layers:
            return f"pipeline_parallel_size {pp} exceeds the model's {layers} layers"
        return None

    def roofline_layout(
        self, requests, *, weights: int, bpt: int, cache_len: int, peak_running: float | None, samples: int = 1
    ):
        return paged_layout(requests, weights, bpt, int(peak_running or self.max_running()))
