"""A loaded transformers model and what every HF mode does with it: sampling arguments, device syncs,
memory figures. The modes (padded batches in runner.py, paged in paged.py) share it; neither imports the
other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.config import Workload


@dataclass
class Loaded:
    torch: Any  # the torch module, imported when the model loads
    model: Any  # the transformers model, on its device, in eval mode
    device: Any  # torch.device
    dtype: str
    pad_id: int
    eos_ids: list[int]
    weights_bytes: int

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.on_gpu:
            self.torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.on_gpu:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_bytes(self) -> int | None:
        return self.torch.cuda.max_memory_allocated() if self.on_gpu else None

    def memory_figures(self) -> dict[str, float]:
        """Weights on the device and the torch allocator's peaks since the run began."""
        memory = {"weights_mib": self.weights_bytes / 2**20}
        if self.on_gpu:
            memory["torch_peak_allocated_mib"] = self.torch.cuda.max_memory_allocated() / 2**20
            memory["torch_peak_reserved_mib"] = self.torch.cuda.max_memory_reserved() / 2**20
        return memory


def load(path, dtype: str, device: str) -> Loaded:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    model = model.to(torch.device(device)).eval()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    gen = model.generation_config
    pad_id = gen.pad_token_id if gen.pad_token_id is not None else (gen.eos_token_id or 0)
    if isinstance(pad_id, list):
        pad_id = pad_id[0]
    eos_ids = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    loaded = Loaded(torch, model, torch.device(device), dtype, pad_id, eos_ids, weights)
    loaded.sync()
    return loaded


def sampling_kwargs(sampling: Workload) -> dict[str, Any]:
    if sampling.temperature > 0:
        return {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
    return {"do_sample": False}
