"""Name -> runner registry. Stores import paths, so `import bench` never imports a stack.

Adding a stack means one new module under bench/runners/ and one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from bench.errors import UserError


@dataclass(frozen=True)
class RunnerSpec:
    name: str
    import_path: str  # "module:Class"
    modes: tuple[str, ...]  # the first is the default
    # Scenario knobs that only this stack understands (others are rejected at validation).
    knobs: frozenset[str]
    description: str


RUNNERS: dict[str, RunnerSpec] = {
    "hf": RunnerSpec(
        name="hf",
        import_path="bench.runners.hf:HfRunner",
        modes=("sequential", "padded", "static-cache", "paged"),
        knobs=frozenset({"batch_size", "memory_fraction", "memory_budget_gib"}),
        description="Hugging Face transformers generate(): one request at a time, static padded batches, "
        "a StaticCache reserved up front, or transformers' own paged continuous batching",
    ),
    "vllm": RunnerSpec(
        name="vllm",
        import_path="bench.runners.vllm:VllmRunner",
        modes=("continuous",),
        knobs=frozenset(
            {
                "gpu_memory_utilization",
                "max_num_seqs",
                "enforce_eager",
                "enable_prefix_caching",
                "kv_cache_space_gib",
                "block_size",
                "memory_budget_gib",
            }
        ),
        description="vLLM offline LLM.generate(): continuous batching over a paged KV cache",
    ),
    "fake": RunnerSpec(
        name="fake",
        import_path="bench.runners.fake:FakeRunner",
        modes=("echo",),
        knobs=frozenset({"fail"}),
        description="No engine: returns the requested token counts without generating. For testing the "
        "harness only; its results are marked as not measurements",
    ),
}


def runner_spec(name: str) -> RunnerSpec:
    try:
        return RUNNERS[name]
    except KeyError:
        raise UserError(f"unknown stack {name!r}; known stacks: {', '.join(sorted(RUNNERS))}") from None


def load_runner(name: str):
    """Import and return the runner class for a stack name."""
    spec = runner_spec(name)
    module_name, _, attr = spec.import_path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)
