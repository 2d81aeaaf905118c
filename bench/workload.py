"""Turn a workload spec into exact requests: prompt token ids and output lengths, deterministic from a seed.

Both stacks receive the same ids and must return exactly `output_len` tokens per request. The hash of
the requests and sampling settings goes into every result so different workloads are never compared.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.config import Fixed, Lognormal, Normal, Uniform, Workload
from bench.errors import UserError


@dataclass(frozen=True)
class Request:
    index: int
    prompt_ids: tuple[int, ...]
    output_len: int

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_ids)


@dataclass(frozen=True)
class BuiltWorkload:
    name: str
    spec: Workload
    requests: tuple[Request, ...]
    warmup: tuple[Request, ...]
    hash: str

    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_len for r in self.requests)

    @property
    def samples(self) -> int:
        """Outputs per request (`samples_per_prompt`, or `beam_width`)."""
        return self.spec.outputs_per_prompt

    @property
    def output_tokens(self) -> int:
        return sum(r.output_len for r in self.requests) * self.samples

    def sequences(self) -> list[Request]:
        """Every output the workload asks for, as one request each: a request of n samples n times over,
        in request order. The engines return their outputs in this order."""
        return per_sample(self.requests, self.samples)

    @property
    def max_total_len(self) -> int:
        return max(r.prompt_len + r.output_len for r in self.requests)

    def summary(self) -> dict:
        def stats(values: Sequence[int]) -> dict:
            return {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}

        return {
            "name": self.name,
            "hash": self.hash,
            "requests": len(self.requests),
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "prompt_len": stats([r.prompt_len for r in self.requests]),
            "output_len": stats([r.output_len for r in self.requests]),
            "temperature": self.spec.temperature,
            "top_p": self.spec.top_p,
            "seed": self.spec.seed,
            "spec": self.spec.model_dump(exclude_none=True),
        }


def per_sample(requests: Sequence[Request], samples: int) -> list[Request]:
    """Each request once per sample, its samples next to each other: the order in which the engines
    return n outputs per prompt."""
    return [r for r in requests for _ in range(samples)]


def distinct_outputs(outputs: Sequence[Sequence[int]], k: int) -> int:
    """How many of each request's k outputs (in `per_sample` order) differ as token sequences, summed."""
    return sum(len({tuple(o) for o in outputs[i : i + k]}) for i in range(0, len(outputs), k))


def batches(requests: Sequence[Request], size: int) -> list[Sequence[Request]]:
    """Consecutive batches of `size` requests in workload order, as static batching runs them (the last
    may be smaller)."""
    return [requests[i : i + size] for i in range(0, len(requests), size)]


def sample_lengths(length, n: int, rng: random.Random) -> list[int]:
    if isinstance(length, Fixed):
        return [length.value] * n
    if isinstance(length, Uniform):
        return [rng.randint(length.min, length.max) for _ in range(n)]
    if isinstance(length, Normal):
        draw = lambda: rng.gauss(length.mean, length.std)  # noqa: E731
    elif isinstance(length, Lognormal):
        draw = lambda: rng.lognormvariate(math.log(length.median), length.sigma)  # noqa: E731
    else:  # pragma: no cover - the schema admits no other kind
        raise TypeError(length)
    return [min(length.max, max(length.min, round(draw()))) for _ in range(n)]


def workload_hash(requests: Sequence[Request], spec: Workload) -> str:
    blob = json.dumps(
        {
            "requests": [[list(r.prompt_ids), r.output_len] for r in requests],
            "temperature": spec.temperature,
            "top_p": spec.top_p,
        },
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def build_workload(
    name: str,
    spec: Workload,
    token_pool: Sequence[int],
    encode: Callable[[str], list[int]] | None = None,
    warmup_requests: int = 0,
) -> BuiltWorkload:
    """Build the requests. `token_pool` holds the ids random prompts draw from (no special tokens);
    `encode` tokenizes text prompts."""
    rng = random.Random(spec.seed)
    n = spec.num_requests
    if spec.prompts is not None:
        if encode is None:
            raise ValueError("text prompts need a tokenizer")
        encoded = [tuple(encode(p)) for p in spec.prompts]
        empty = [i for i, ids in enumerate(encoded) if not ids]
        if empty:
            raise UserError(f"workload {name}: prompts {empty} tokenize to no tokens")
        prompts = [encoded[i % len(encoded)] for i in range(n)]
    else:
        lengths = sample_lengths(spec.prompt_len, n, rng)
        prompts = [tuple(rng.choices(token_pool, k=k)) for k in lengths]
    outputs = sample_lengths(spec.output_len, n, rng)
    if spec.shared_prefix_len:
        prefix = tuple(random.Random(spec.seed + 2_000_003).choices(token_pool, k=spec.shared_prefix_len))
        prompts = [prefix + p for p in prompts]
    requests = tuple(Request(i, p, o) for i, (p, o) in enumerate(zip(prompts, outputs)))
    # Warm-up requests have the shapes of the first requests but other token ids, so no prefix cache
    # can carry anything from the warm-up into the timed run.
    wrng = random.Random(spec.seed + 1_000_003)
    warmup = tuple(
        Request(-1 - i, tuple(wrng.choices(token_pool, k=requests[i % n].prompt_len)), requests[i % n].output_len)
        for i in range(warmup_requests)
    )
    return BuiltWorkload(name=name, spec=spec, requests=requests, warmup=warmup, hash=workload_hash(requests, spec))
