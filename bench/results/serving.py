"""The serving result: one file per `pagedbench serve` sweep (a stack's server under each load in turn).

Versioned like the offline result and read back only through `ServingResult.model_validate`. Each load
keeps every request, as columns of numbers (one entry per request; the chunk times of every request one
after another), so that any figure can be recomputed from the raw records at any size the tool writes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bench.results.schema import Memory, Percentiles
from bench.results.sections import Energy, Environment, Section

SERVING_KIND = "serving"
SERVING_VERSION = 2  # 2: typed, requests as columns; 1 (a plain dict of per-request objects) is not read


class RequestColumns(Section):
    """Every request of a load, in index order. `chunks[i]` of `chunk_us` belong to request i: each chunk
    that carried output, in microseconds after the request was sent."""

    index: list[int] = Field(default_factory=list)
    sent_s: list[float] = Field(default_factory=list)  # from the load's start
    end_s: list[float | None] = Field(default_factory=list)  # the last byte, from the load's start
    prompt_tokens: list[int | None] = Field(default_factory=list)  # the server's usage
    output_tokens: list[int | None] = Field(default_factory=list)
    streamed_tokens: list[int | None] = Field(default_factory=list)  # tokens the chunks carried, where said
    chunks: list[int] = Field(default_factory=list)
    chunk_us: list[int] = Field(default_factory=list)
    error: list[str | None] = Field(default_factory=list)

    @model_validator(mode="after")
    def _aligned(self):
        n = len(self.index)
        for name in ("sent_s", "end_s", "prompt_tokens", "output_tokens", "streamed_tokens", "chunks", "error"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"requests.{name} has {len(getattr(self, name))} entries for {n} requests")
        if sum(self.chunks) != len(self.chunk_us):
            raise ValueError("requests.chunk_us does not hold the chunks the requests say they had")
        return self


class ClientHealth(Section):
    """The load generator's own state during a load: whether it kept its schedule and read every answer as
    it came, or was itself the limit."""

    loop_lag_ms_p99: float | None = None  # how late the event loop woke, sampled every few ms
    loop_lag_ms_max: float | None = None
    send_lag_ms_p99: float | None = None  # open loop: how late requests left against their schedule
    cpu_share: float | None = None  # the client's CPU time over the load's wall time (1.0: one core busy)
    bound: bool = False  # the client could not keep up: the load's figures are the client's, not the server's
    reason: str | None = None


class LoadFigures(Section):
    """One load's figures, computed by the load generator from its records (definitions in
    `bench.serving.metrics`). A latency figure the load could not measure is None, with the reason."""

    load: str
    offered_rps: float | None
    duration_s: float = Field(ge=0)
    requests: int = Field(ge=0)
    completed: int = Field(ge=0)
    failed: int = Field(ge=0)
    errors: list[str]  # the first few reasons, with how many requests had each
    achieved_rps: float = Field(ge=0)
    output_tokens_per_s: float = Field(ge=0)
    goodput_rps: float | None
    ttft_ms: Percentiles | None
    tpot_ms: Percentiles | None
    itl_ms: Percentiles | None
    e2e_ms: Percentiles | None
    # Streaming: the output tokens per chunk over completed requests; a server that sent each answer in
    # one piece did not stream, and its TTFT, TPOT and ITL measure nothing.
    tokens_per_chunk: float | None = None
    unmeasured: dict[str, str] = Field(default_factory=dict)  # figure -> why it is not given
    client: ClientHealth | None = None


class LoadResult(LoadFigures):
    started_s: float  # on the sweep's time axis (the memory sampler's)
    energy: Energy | None = None  # the server's GPUs over the load
    records: RequestColumns = Field(default_factory=RequestColumns)


class ServingResult(Section):
    kind: Literal["serving"] = SERVING_KIND
    schema_version: Literal[2] = SERVING_VERSION  # bump on breaking changes
    run_id: str
    stack: str
    server: str
    suite: str
    scenario: str
    model: str
    workload: str
    settings: dict[str, int | float | bool | str | None] = Field(default_factory=dict)
    slos: dict[str, float] = Field(default_factory=dict)
    requests: int = Field(ge=0)
    loads: list[LoadResult] = Field(default_factory=list)
    timeline: list[dict[str, float]] = Field(default_factory=list)  # the server's gauges, scraped
    memory: Memory | None = None
    environment: Environment | None = None
    status: Literal["ok", "failed", "interrupted"] = "ok"
    error: str | None = None

    @model_validator(mode="after")
    def _status_consistent(self):
        if self.status != "ok" and not self.error:
            raise ValueError(f"status {self.status!r} needs an error message")
        return self
