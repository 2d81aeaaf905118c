"""Build a synthetic model (random weights from a preset's config) into a cache directory.

The directory is keyed by a hash of (preset config, dtype, seed, builder version): the same key always
holds the same files, and both transformers and vLLM load it like any local model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from bench.models.presets import TOKENIZER_VOCAB, Preset

BUILDER_VERSION = 2  # 2: the tokenizer covers the model's whole vocabulary
EOT = "<|endoftext|>"
MARKER = "pagedbench-model.json"


def cache_root() -> Path:
    return Path(os.environ.get("PAGEDBENCH_CACHE", Path.home() / ".cache" / "pagedbench")) / "models"


def preset_key(preset: Preset, seed: int) -> str:
    blob = json.dumps(
        {"config": preset.config, "family": preset.family, "dtype": preset.dtype, "seed": seed, "v": BUILDER_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def synthetic_dir(preset: Preset, seed: int, root: Path | None = None) -> Path:
    return (root or cache_root()) / f"{preset.name}-s{seed}-{preset_key(preset, seed)}"


def ensure_synthetic(preset: Preset, seed: int = 0, root: Path | None = None) -> Path:
    """Return the model directory, building it first if the cache lacks it."""
    target = synthetic_dir(preset, seed, root)
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _build(preset, seed, tmp)
        _readable_by_all(tmp)
        try:
            tmp.rename(target)
        except OSError:
            # Another process finished the same build first; its files are identical.
            if not (target / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _readable_by_all(root: Path) -> None:
    """mkdtemp makes 0700 and the umask may narrow the files: a process of another uid (a container that
    mounts the cache, the compose `prepare` service's model read by the stacks) must still load the model."""
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map, so token id == byte value."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


def token_text(token_id: int) -> str:
    """The text of a token above the byte tokens and end-of-text: visible, distinct, one token."""
    return f"<t{token_id}>"


def build_tokenizer(vocab_size: int = TOKENIZER_VOCAB):
    """A byte-level BPE tokenizer with no merges (one token per byte, so any text can be encoded), then
    end-of-text, then one token per id up to the model's vocabulary (`token_text`): a random-weight model
    generates ids from its whole vocabulary, and each such id must decode to visible text on its own and
    come back as itself from that text, as a real tokenizer's would, or a server that streams decoded
    text would have nothing to send until the end."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_chars = _bytes_to_unicode()
    vocab = {byte_chars[b]: b for b in range(256)}
    vocab[EOT] = 256
    assert len(vocab) == TOKENIZER_VOCAB
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOT])
    tok.add_tokens(
        [AddedToken(token_text(i), normalized=False, special=False) for i in range(TOKENIZER_VOCAB, vocab_size)]
    )
    assert tok.get_vocab_size() == max(vocab_size, TOKENIZER_VOCAB)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT, model_max_length=10**6
    )


def _build(preset: Preset, seed: int, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    config_cls = {"gpt2": GPT2Config, "llama": LlamaConfig}[preset.family]
    config = config_cls(**preset.config, bos_token_id=256, eos_token_id=256, pad_token_id=256)
    dtype = getattr(torch, preset.dtype)
    torch.manual_seed(seed)
    # Random init of a 1B model takes a minute on a few CPU cores and a second on a GPU.
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config).to(dtype)
    model = model.cpu()
    if torch.cuda.is_available():
        # The allocator would keep the build's memory (32 GiB for an 8B model in float32) from the engine
        # that this process starts next: vLLM refuses to start when free memory is below its share.
        torch.cuda.empty_cache()
    model.config.dtype = dtype
    model.save_pretrained(out, safe_serialization=True)
    build_tokenizer(config.vocab_size).save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    (out / MARKER).write_text(
        json.dumps(
            {
                "preset": preset.name,
                "seed": seed,
                "key": preset_key(preset, seed),
                "params": params,
                "dtype": preset.dtype,
                "builder_version": BUILDER_VERSION,
            },
            indent=2,
        )
    )
