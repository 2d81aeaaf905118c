"""HF's knobs and the hooks the harness and the roofline need. Imports no torch."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from bench.config import MAX_REQUESTS, ScenarioBase
from bench.roofline import padded_decode_bytes, paged_layout
from bench.stacks.hf import STACK

TP_MODES = ("padded", "sequential")  # one generate() per batch, the same on every rank


def has_tp_plan(model_type: str | None) -> bool:
    """Whether transformers splits this family's layers for tensor parallelism (its config's plan)."""
    from transformers import AutoConfig

    try:
        return bool(getattr(AutoConfig.for_model(model_type), "base_model_tp_plan", None))
    except (ValueError, KeyError):
        return False


def _cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


class HfScenario(ScenarioBase):
    stack: Literal["hf"]
    # "max": search the largest batch that completes within memory_fraction of the GPU (capacity).
    batch_size: Annotated[int, Field(ge=1, le=MAX_REQUESTS)] | Literal["max"] | None = None
    memory_fraction: float | None = Field(default=None, gt=0.0, le=1.0)
    # "auto": the layers placed over every GPU the run sees (accelerate's device_map), one GPU computing at
    # a time: the model is split for memory, not run in parallel.
    device_map: Literal["auto"] | None = None
    # transformers' tensor parallelism (tp_plan "auto"): one process per GPU, every layer split over them,
    # all computing at once. Padded and sequential modes at a fixed batch size, on models with a TP plan.
    tensor_parallel_size: int | None = Field(default=None, ge=1, le=64)
    # cuDNN's fused attention for torch's scaled_dot_product_attention on a GPU. torch (2.9 and later) tries it
    # first on Hopper and newer, and cuDNN builds an execution plan for every new shape: every decode step of
    # a padded batch has a new key length. On an H100 a first pass then ran at 81 ms a step against 19 ms
    # once every shape had its plan, and a batch of another prompt width paid again (85 ms) inside the timed
    # run. Off (the default), torch takes its memory-efficient kernel, which plans nothing: 17 ms a step on
    # the first pass and 17-22 ms after (docs/results/h100-2026-12-07-sharing, scripts/hf_first_pass.py).
    cudnn_attention: bool = False

    MODES: ClassVar[tuple[str, ...]] = STACK.modes
    BUDGET_KNOB: ClassVar[str] = "memory_fraction"

    @model_validator(mode="after")
    def _batching(self):
        if self.resolved_mode == "sequential" and self.batch_size not in (None, 1):
            raise ValueError("mode 'sequential' runs one request at a time: batch_size must be 1 or left out")
        if self.batch_size == "max" and self.resolved_mode not in ("padded", "static-cache"):
            raise ValueError("batch_size 'max' applies to modes padded and static-cache")
        if self.ranks > 1:
            if self.device_map:
                raise ValueError("tensor_parallel_size and device_map are two ways to split the model: give one")
            if self.resolved_mode not in TP_MODES:
                raise ValueError(f"tensor_parallel_size applies to modes {' and '.join(TP_MODES)}")
            if self.batch_size == "max":
                raise ValueError("tensor_parallel_size needs a fixed batch_size (a capacity search is per device)")
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
            "tensor_parallel_size": self.tensor_parallel_size,
            "cudnn_attention": self.cudnn_attention,  # process-wide in torch
        }

    @property
    def ranks(self) -> int:
        return self.tensor_parallel_size or 1

    def min_gpus(self) -> int:
        return 2 if self.device_map else self.ranks

    def placement_refusal(self, model_config: dict, gpus: int) -> str | None:
        if self.device_map and gpus < 2:
            return f"device_map auto places the layers over several GPUs; this run sees {gpus}"
        tp = self.ranks
        if tp == 1:
            return None
        # On a CPU run the ranks are processes sharing the host's cores: the path runs, nothing is sped up.
        if gpus and tp > gpus:
            return f"tensor_parallel_size {tp} needs {tp} GPUs; this run sees {gpus}"
        if not gpus and _cuda_visible():
            return "transformers places tensor-parallel shards on the GPUs it sees: this CPU run cannot split the model"
        for key, what in (("num_attention_heads", "attention heads"), ("num_key_value_heads", "KV heads")):
            heads = model_config.get(key)
            if isinstance(heads, int) and heads % tp:
                return f"tensor_parallel_size {tp} does not divide the model's {heads} {what}"
        if not has_tp_plan(model_config.get("model_type")):
            return f"transformers has no tensor parallel plan for {model_config.get('model_type')!r} models"
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
