import json

import pytest

from bench.errors import UserError
from bench.models import parse_model


def test_synthetic_with_seed():
    ref = parse_model("synthetic:gpt2-124m@3")
    assert ref.source == "synthetic" and ref.seed == 3 and ref.max_position == 1024


def test_hub_id():
    ref = parse_model("meta-llama/Llama-3.2-1B")
    assert ref.source == "hub" and ref.max_position is None and not ref.offline


def test_unknown_preset_lists_known():
    with pytest.raises(UserError, match="known presets: gpt2-124m, llama-1b, llama-8b, tiny-gpt2, tiny-llama"):
        parse_model("synthetic:nope")


def test_local_directory_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"n_positions": 64}))
    with pytest.raises(UserError, match="no weights"):
        parse_model(str(tmp_path))


def test_local_directory_without_tokenizer(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"n_positions": 64}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="no tokenizer"):
        parse_model(str(tmp_path))


def test_local_directory_without_config(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        parse_model(str(tmp_path))


def test_local_directory(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 77}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "tokenizer.json").write_text("{}")
    ref = parse_model(str(tmp_path))
    assert ref.source == "local" and ref.max_position == 77


def test_synthetic_model_is_readable_by_other_uids(tmp_path):
    """In compose, `prepare` builds the model and the stacks read it: every file must be readable by a uid
    other than the builder's, whatever the umask (tempfile.mkdtemp alone gives 0700)."""
    import os
    import stat

    from bench.models.presets import PRESETS
    from bench.models.synthetic import MARKER, ensure_synthetic

    old = os.umask(0o077)
    try:
        path = ensure_synthetic(PRESETS["tiny-llama"], seed=0, root=tmp_path)
    finally:
        os.umask(old)
    assert (path / MARKER).is_file()
    for p in [path, *path.rglob("*")]:
        mode = p.stat().st_mode
        assert mode & stat.S_IROTH, f"{p}: {stat.filemode(mode)}"
        assert not p.is_dir() or mode & stat.S_IXOTH, f"{p}: {stat.filemode(mode)}"


def test_the_synthetic_tokenizer_covers_the_models_whole_vocabulary_with_visible_tokens():
    """A random-weight model generates any id of its vocabulary: each must decode on its own to visible
    text that comes back as that one id, and a stream of them must decode token by token (as a server
    that streams decoded text sends it), not all at the end."""
    pytest.importorskip("tokenizers")
    from tokenizers.decoders import DecodeStream

    from bench.models.synthetic import build_tokenizer

    tok = build_tokenizer(2048).backend_tokenizer
    assert tok.get_vocab_size() == 2048
    for i in range(257, 2048):
        text = tok.decode([i])
        assert text and text.isprintable() and tok.encode(text, add_special_tokens=False).ids == [i], i
    stream = DecodeStream(skip_special_tokens=True)
    ids = [300, 2047, 65, 1000, 257, 97]
    pieces = [stream.step(tok, i) for i in ids]
    assert all(pieces) and "".join(pieces) == tok.decode(ids)
    assert len({tok.decode([i]) for i in range(257, 2048)}) == 2048 - 257  # distinct
