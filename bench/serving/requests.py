"""The workload as text for the servers: they take prompts as text and tokenize them with the model's
tokenizer, so the prompts are drawn from tokens that come back as themselves from their own text, and each
prompt's length is what that tokenizer counts (recorded, and checked against each server's usage)."""

from __future__ import annotations

from pathlib import Path

from bench.config import Workload
from bench.errors import UserError
from bench.stacks.base import ServeRequest
from bench.workload import build_workload


def _tokenizer(model_dir: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(model_dir / "tokenizer.json"))


def text_pool(tok) -> list[int]:
    """Token ids whose decoded text is printable and encodes back to the same one id, for a tokenizer."""
    special = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    pool = []
    for i in range(tok.get_vocab_size()):
        if i in special:
            continue
        text = tok.decode([i])
        if text and text.isprintable() and tok.encode(text, add_special_tokens=False).ids == [i]:
            pool.append(i)
    return pool


def serve_requests(name: str, spec: Workload, model_dir: Path) -> list[ServeRequest]:
    """The workload's requests (its seed, lengths and count) as text prompts."""
    tok = _tokenizer(model_dir)
    pool = text_pool(tok)
    if len(pool) < 2:
        raise UserError(f"model {model_dir}: its tokenizer has too few tokens that round-trip through text")
    built = build_workload(name, spec, pool)
    requests = []
    for r in built.requests:
        text = tok.decode(list(r.prompt_ids))
        requests.append(ServeRequest(r.index, text, len(tok.encode(text).ids), r.output_len))
    return requests
