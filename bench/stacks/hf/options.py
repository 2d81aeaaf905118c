"""HF's knobs and the hooks the harness and the roofline need. Imports no torch."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from bench.config import MAX_REQUESTS, ScenarioBase
from bench.roofline import padded_decode_bytes, paged_layout
from bench.stacks.hf import STACK


class HfScenario(ScenarioBase):
    stack: Literal["hf"]
    # "max": search the largest batch that completes within memory_fraction of the GPU (capacity).
    batch_size: Annotated[int, Field(ge=1, le=MAX_REQUESTS)] | Literal["max"] | None = None
    memory_fraction: float | None = Field(default=None, gt=0.0, le=1.0)
    # "auto": the layers placed over every GPU the run sees (accelerate's device_map), one GPU computing at
    # a time: the model is split for memory, not run in parallel (HF's tensor parallelism is not built).
    device_map: Literal["auto"] | None = None

    MODES: ClassVar[tuple[str, ...]] = STACK.modes
    BUDGET_KNOB: ClassVar[str] = "memory_fraction"

    @model_validator(mode="after")
    def _batching(self):
        if self.resolved_mode == "sequential" and self.batch_size not in (None, 1):
            raise ValueError("mode 'sequential' runs one request at a time: batch_size must be 1 or left out")
        if self.batch_size == "max" and self.resolved_mode not in ("padded", "static-cache"):
            raise ValueError("batch_size 'max' applies to modes padded and static-cache")
        return self

    @property
    def resolved_batch_size(self) -> int | None:
        """Rows per batch (1 for sequential or when not given); None when it is to be searched ("max")."""
        return None if self.batch_size == "max" else (self.batch_size or 1)

    def engine_settings(self) -> dict:
        # One set of weights serves every mode, batch size and max length.
        return {
            "stack": self.stack,
            "dtype": self.dtype,
            "memory_fraction": self.memory_fraction,
            "device_map": self.device_map,
        }

    def placement_refusal(self, model_config: dict, gpus: int) -> str | None:
        if self.device_map and gpus < 2:
            return f"device_map auto places the layers over several GPUs; this run sees {gpus}"
        return None

    @property
    def batched(self) -> bool:
        """Static padded batches (every mode but paged)."""
        return self.resolved_mode != "paged"

    def workload_refusal(self, workload) -> str | None:
        if workload.outputs_per_prompt > 1 and not self.batched:
            return "HF's paged mode generates one output per prompt: samples_per_prompt and beam_width must be 1"
        return None

    def crosscheck_refusal(self) -> str | None:
        if not self.batched or self.batch_size == "max":
            return "the cross-check covers fixed-batch HF modes and vLLM"
        return None

    def roofline_layout(
        self, requests, *, weights: int, bpt: int, cache_len: int, peak_running: float | None, samples: int = 1
    ):
        if not self.batched:  # transformers' paged cache: a continuous-batching engine's bound
            return paged_layout(requests, weights, bpt, int(peak_running or self.max_running()))
        # `requests` has each request once per sample, next to each other: a batch of b requests is b x n rows.
        size = samples * (1 if self.resolved_mode == "sequential" else (self.resolved_batch_size or len(requests)))
        static = cache_len if self.resolved_mode == "static-cache" else None
        read, steps = padded_decode_bytes(requests, size, weights, bpt, static)
        return read, steps, "every slot of the padded cache tensors, every step"
