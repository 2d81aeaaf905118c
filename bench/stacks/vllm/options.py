"""vLLM's knobs. Imports no vLLM."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from bench.config import MAX_REQUESTS, ScenarioBase
from bench.roofline import paged_layout
from bench.stacks.vllm import STACK

DEFAULT_MAX_NUM_SEQS = 256  # vLLM's own default: the most sequences it schedules at once


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

    MODES: ClassVar[tuple[str, ...]] = STACK.modes
    BUDGET_KNOB: ClassVar[str] = "gpu_memory_utilization"

    def max_running(self) -> int:
        return self.max_num_seqs or DEFAULT_MAX_NUM_SEQS

    def roofline_layout(
        self, requests, *, weights: int, bpt: int, cache_len: int, peak_running: float | None, samples: int = 1
    ):
        return paged_layout(requests, weights, bpt, int(peak_running or self.max_running()))
