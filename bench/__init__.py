"""PagedBench: measure what vLLM's PagedAttention buys over plain Hugging Face transformers.

Importing this package must stay cheap: the collector image has no torch, transformers or vLLM.
Heavy stacks are imported lazily by the runners that need them.
"""

__version__ = "0.1.0"
