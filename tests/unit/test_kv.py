import pytest

from bench.kv import block_fill, kv_bytes_per_token, kv_geometry
from bench.models.presets import PRESETS
from bench.workload import Request


def test_gpt2_124m_by_hand():
    # 2 (K and V) x 12 layers x 12 heads x 64 dims x 2 bytes (fp16) = 36,864 bytes per token
    assert kv_bytes_per_token(PRESETS["gpt2-124m"].config, "float16") == 2 * 12 * 12 * 64 * 2 == 36864
    assert kv_geometry(PRESETS["gpt2-124m"].config)["attention"] == "mha"


def test_llama_gqa_by_hand():
    # 2 x 16 layers x 8 KV heads (of 32 query heads) x 64 dims x 2 bytes (bf16) = 32,768 bytes per token
    assert kv_bytes_per_token(PRESETS["llama-1b"].config, "bfloat16") == 32768
    assert kv_geometry(PRESETS["llama-1b"].config)["attention"] == "gqa"


def test_mqa_and_float32():
    cfg = {"num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 1, "hidden_size": 256}
    assert kv_geometry(cfg)["attention"] == "mqa"
    assert kv_bytes_per_token(cfg, "float32") == 2 * 4 * 1 * 32 * 4


def test_sliding_window_is_flagged():
    cfg = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64, "sliding_window": 4096}
    assert kv_geometry(cfg)["sliding_window"] == 4096


def test_latent_attention_is_refused():
    with pytest.raises(ValueError, match="latent"):
        kv_geometry({"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64, "kv_lora_rank": 512})


def test_block_fill():
    # 17 tokens (10 + 8 - 1) in blocks of 16 -> 2 blocks = 32 slots; 16 tokens -> 1 block
    reqs = [Request(0, tuple(range(10)), 8), Request(1, tuple(range(9)), 8)]
    assert block_fill(reqs, 16) == pytest.approx((17 + 16) / (32 + 16))
