"""Hugging Face transformers `generate()`."""

from bench.stacks.spec import StackSpec

STACK = StackSpec(
    name="hf",
    label="HF",
    description="Hugging Face transformers generate(): one request at a time, static padded batches, "
    "a StaticCache reserved up front, or transformers' own paged continuous batching",
    modes=("sequential", "padded", "static-cache", "paged"),
    options="bench.stacks.hf.options:HfScenario",
    runner="bench.stacks.hf.runner:HfRunner",
    role="baseline",
    rank=10,
    color="#4c72b0",
    packages=("torch", "transformers", "tokenizers"),
    crosscheck=True,
    server="bench.stacks.hf.serve:SERVER",
)
