"""Synthetic model presets: random weights built from a config, so nothing is downloaded.

Memory and speed depend on shapes and lengths, not on weight values, so a random-weight model of a real
architecture measures what the real one would. Pure data: no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    name: str
    family: str  # "gpt2" | "llama"
    config: dict[str, Any] = field(hash=False)
    dtype: str  # dtype the weights are saved in
    description: str

    @property
    def max_position(self) -> int:
        key = "n_positions" if self.family == "gpt2" else "max_position_embeddings"
        return int(self.config[key])


# The tokenizer's byte-level part (256 byte tokens plus one end-of-text token); it has one more token for
# every id of the model's vocabulary above these, which must be at least that large.
TOKENIZER_VOCAB = 257

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="gpt2-124m",
            family="gpt2",
            config=dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257),
            dtype="float16",
            description="GPT-2 small (124M) shapes, the tutorial's model",
        ),
        Preset(
            name="llama-1b",
            family="llama",
            config=dict(
                hidden_size=2048,
                intermediate_size=8192,
                num_hidden_layers=16,
                num_attention_heads=32,
                num_key_value_heads=8,
                head_dim=64,
                vocab_size=128256,
                max_position_embeddings=4096,
                rope_theta=500000.0,
                tie_word_embeddings=True,
            ),
            dtype="bfloat16",
            description="Llama-3.2-1B-like shapes (1.2B, grouped-query attention 32/8 heads)",
        ),
        Preset(
            name="llama-8b",
            family="llama",
            config=dict(
                hidden_size=4096,
                intermediate_size=14336,
                num_hidden_layers=32,
                num_attention_heads=32,
                num_key_value_heads=8,
                head_dim=128,
                vocab_size=128256,
                max_position_embeddings=8192,
                rope_theta=500000.0,
                tie_word_embeddings=False,
            ),
            dtype="bfloat16",
            description="Llama-3.1-8B-like shapes (8.0B, grouped-query attention 32/8 heads); needs a GPU",
        ),
        Preset(
            name="tiny-gpt2",
            family="gpt2",
            config=dict(n_layer=2, n_embd=128, n_head=4, n_positions=512, vocab_size=512),
            dtype="float32",
            description="2-layer GPT-2 for CPU tests (seconds)",
        ),
        Preset(
            name="tiny-llama",
            family="llama",
            config=dict(
                hidden_size=128,
                intermediate_size=256,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                head_dim=32,  # the smallest head size vLLM's CPU attention supports
                vocab_size=512,
                max_position_embeddings=512,
                tie_word_embeddings=False,
            ),
            dtype="float32",
            description="2-layer Llama with grouped-query attention (4/2 heads) for CPU tests",
        ),
    ]
}
