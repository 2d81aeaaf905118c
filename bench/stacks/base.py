"""A stack's contract: what it runs offline (`Runner`) and what it serves online (`ServerKind`, taking
`ServeRequest`s). The base knows no stack: each stack implements it in its own folder."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import ScenarioBase, Workload
from bench.results.sections import KvBatches, KvPool
from bench.workload import Request


@dataclass
class RequestTiming:
    """Seconds since the start of the timed run (every request is submitted then)."""

    finish_s: float  # when the request's output was available to the caller
    first_token_s: float | None = None
    last_token_s: float | None = None  # when its last token was produced (<= finish_s); for TPOT


@dataclass
class RunOutput:
    elapsed_s: float
    # Tokens each request got back, counted from what the engine returned (indexed like the requests).
    returned_tokens: list[int]
    timings: list[RequestTiming]
    latency_source: str
    kv: KvBatches | KvPool | None = None
    memory: dict[str, float] = field(default_factory=dict)  # torch peaks, weights, ... (Memory's fields)
    # Of each request's outputs (n samples, or beams), how many differ, summed; None with one per request.
    distinct_outputs: int | None = None


@dataclass(frozen=True)
class LoadedModel:
    path: Path  # a local directory (synthetic models are built first)
    spec: str
    dtype: str  # resolved: "float32" | "float16" | "bfloat16"
    max_model_len: int
    device: str  # "cuda" | "cpu"


class Runner(abc.ABC):
    """load once, then warmup/run per scenario; `engine_key` says when a loaded runner can be reused."""

    is_measurement = True

    def __init__(self, model: LoadedModel, scenario: ScenarioBase) -> None:
        self.model = model
        self.scenario = scenario

    @staticmethod
    def engine_key(model: LoadedModel, scenario: ScenarioBase) -> tuple:
        """Scenarios with equal keys can share one loaded engine."""
        return (model, tuple(sorted(scenario.engine_settings().items())))

    @abc.abstractmethod
    def load(self) -> dict[str, float]:
        """Load weights / start the engine. Returns `Timing` fields: load_s, and engine_start_s and
        compile_cache where there is an engine to start."""

    def configure(self, model: LoadedModel, scenario: ScenarioBase) -> None:
        """Switch a loaded runner to another scenario with the same engine key."""
        self.model, self.scenario = model, scenario

    @abc.abstractmethod
    def run(self, requests: Sequence[Request], sampling: Workload, *, warmup: bool = False) -> RunOutput:
        """Generate every request to exactly its output length with the workload's sampling settings;
        timed from submission."""

    warmup_shared = False  # the last warm_up was skipped: an earlier one on this engine covered its shapes

    def warm_up(self, warmup: Sequence[Request], requests: Sequence[Request], sampling: Workload) -> float | None:
        """Run the warm-up requests before the timed run; seconds taken, or None when there were none.
        `requests` are the timed run's, for runners whose first pass over large shapes is slow."""
        self.warmup_shared = False
        if not warmup:
            return None
        return self.run(warmup, sampling, warmup=True).elapsed_s

    def settle(self) -> None:
        """Before a scenario's readings begin on an engine an earlier scenario used: give back what that
        scenario left cached, so that this scenario's memory figures are its own."""

    def set_probe(self, sampler) -> None:
        """Attach stack gauges to the sampler (e.g. vLLM's KV usage) for the timed run."""

    def engine_alive(self) -> bool:
        """False once an engine process this runner started has died (tells an engine crash from Ctrl-C)."""
        return True

    def plain_run(self, requests: Sequence[Request], sampling: Workload) -> tuple[int, float]:
        """(tokens returned, seconds) of the plainest loop a careful person would write on this loaded
        engine, with none of the harness's timing: what `pagedbench crosscheck` compares the harness with.
        Stacks whose spec says `crosscheck=True` implement it."""
        raise NotImplementedError(f"{type(self).__name__} has no plain loop")

    def close(self) -> None:
        """Free the engine and its memory."""


@dataclass(frozen=True)
class ServeRequest:
    index: int
    prompt: str  # text: every server tokenizes it with the model's own tokenizer
    prompt_tokens: int  # what that tokenizer counts
    output_len: int


@dataclass(frozen=True)
class ServerKind:
    """How to start one stack's server and talk to it. `command(model_dir, port, settings)` is its command
    line; `body(model, request)` the /v1/completions body forcing exactly the request's output length
    with the fields that server accepts; `chunk_tokens(choice)`: how many tokens a streamed choice
    carried, where the server says (their sum must agree with its usage), else None."""

    name: str
    command: Callable[[Path, int, dict], list[str]]
    body: Callable[[str, ServeRequest], dict]
    chunk_tokens: Callable[[dict], int | None] = lambda choice: None  # noqa: E731
    env: Callable[[dict], dict] = lambda settings: {}  # noqa: E731
    # What the server exposes about its KV cache during load: a Prometheus page's path, or None, and the
    # metrics kept from it on the load's timeline (its names -> ours: kv_usage, running, waiting, ...).
    metrics_path: str | None = None
    metrics: dict[str, str] = field(default_factory=dict)
    lacks: tuple[str, ...] = ()  # engine settings the server has no way to honour: a scenario setting one is refused
