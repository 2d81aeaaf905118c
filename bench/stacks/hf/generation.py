"""A loaded transformers model and what every HF mode does with it: sampling arguments, device syncs,
memory figures. The modes (padded batches in runner.py, paged in paged.py) share it; neither imports the
other."""

from __future__ import annotations

import contextlib
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
    spread_over: tuple[int, ...] = ()  # the GPUs a device_map placed layers on (all of them are synced)
    ranks: Any = None  # tensor parallel: the other ranks (tensor_parallel.Ranks); this process is rank 0

    @property
    def tensor_parallel(self) -> int:
        return self.ranks.size if self.ranks is not None else 1

    def _everywhere(self, name: str, kwargs: dict):
        """The call on every rank (only here without tensor parallelism)."""
        return contextlib.nullcontext() if self.ranks is None else self.ranks.together(name, kwargs)

    def seed(self, seed: int) -> None:
        with self._everywhere("seed", {"seed": seed}):
            self.torch.manual_seed(seed)

    def generate(self, kwargs: dict[str, Any], **here: Any):
        """generate() with `kwargs` on every rank; `here` (stopping criteria, what to return) on this one."""
        with self._everywhere("generate", kwargs):
            return self.model.generate(**kwargs, **here)

    def close(self) -> None:
        if self.ranks is not None:
            self.ranks.close()
            self.ranks = None

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.on_gpu:
            for index in self.spread_over or (None,):
                self.torch.cuda.synchronize(index)

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


def load(path, dtype: str, device: str, device_map: str | None = None, tensor_parallel: int = 1) -> Loaded:
    """The model on `device`; with `device_map` its layers placed over the devices (inputs then go to
    the device of its first layer); with `tensor_parallel` > 1 split over that many ranks, this process
    rank 0 (its weights are its shard)."""
    import torch
    from transformers import AutoModelForCausalLM

    ranks = None
    if tensor_parallel > 1:
        from bench.stacks.hf.tensor_parallel import Ranks

        ranks = Ranks(tensor_parallel)
        try:
            model = ranks.start(path, dtype)
        except BaseException:
            ranks.close()
            raise
        device = str(next(model.parameters()).device)
    elif device_map:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), device_map=device_map).eval()
        device = str(next(model.parameters()).device)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        model = model.to(torch.device(device)).eval()
    local = [getattr(t, "to_local", lambda t=t: t)() for t in (*model.parameters(), *model.buffers())]
    weights = sum(t.numel() * t.element_size() for t in local)  # a tensor-parallel rank's: its shard
    gen = model.generation_config
    pad_id = gen.pad_token_id if gen.pad_token_id is not None else (gen.eos_token_id or 0)
    if isinstance(pad_id, list):
        pad_id = pad_id[0]
    eos_ids = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    spread = (
        tuple(sorted({p.device.index for p in model.parameters() if p.device.type == "cuda"})) if device_map else ()
    )
    loaded = Loaded(
        torch, model, torch.device(device), dtype, pad_id, eos_ids, weights, spread if len(spread) > 1 else (), ranks
    )
    loaded.sync()
    return loaded


def sampling_kwargs(sampling: Workload) -> dict[str, Any]:
    if sampling.temperature > 0:
        return {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
    return {"do_sample": False}
