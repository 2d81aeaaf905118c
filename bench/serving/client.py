"""The load generator: the same requests to either server over its OpenAI-compatible /v1/completions,
streamed, each forced to exactly its output length with the fields that server accepts, every answer
checked against the workload. A request that fails (an HTTP error, a dropped connection, a wrong length)
is recorded as failed with the reason, never dropped; those already answered are kept."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.serving.schedule import Load, send_times
from bench.serving.server import ServeRequest, ServerKind

PROGRESS_EVERY_S = 15.0  # a line this often while a load runs


@dataclass
class Record:
    """What one request saw, in seconds from the load's start."""

    index: int
    sent_s: float
    chunk_s: list[float] = field(default_factory=list)  # every streamed chunk that carried output
    streamed_tokens: int | None = None  # the tokens those chunks carried, where the server says
    end_s: float | None = None
    prompt_tokens: int | None = None  # from the server's usage
    output_tokens: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def first_s(self) -> float | None:
        return self.chunk_s[0] if self.chunk_s else None


def check(record: Record, request: ServeRequest) -> None:
    """Mark the record failed when the answer is not exactly the workload's."""
    if record.error is not None:
        return
    if record.output_tokens is None:
        record.error = "the server sent no usage"
    elif record.output_tokens != request.output_len:
        record.error = f"{record.output_tokens} output tokens, the workload asks for {request.output_len}"
    elif record.streamed_tokens is not None and record.streamed_tokens != record.output_tokens:
        record.error = f"{record.streamed_tokens} tokens streamed, usage says {record.output_tokens}"
    elif record.prompt_tokens is not None and record.prompt_tokens != request.prompt_tokens:
        record.error = f"prompt of {record.prompt_tokens} tokens, the workload's is {request.prompt_tokens}"


def _take(record: Record, tokens: int | None, at: float) -> None:
    """One streamed choice of `tokens` tokens (None: the server does not say): its time counts where it
    carried output (a chunk of several tokens is one arrival, as a client sees it)."""
    if tokens is None:
        record.chunk_s.append(at)
    elif tokens > 0:
        record.chunk_s.append(at)
        record.streamed_tokens = (record.streamed_tokens or 0) + tokens


async def _send(client, url: str, kind: ServerKind, body: dict, record: Record, t0: float) -> None:
    import httpx

    try:
        async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                record.error = f"HTTP {response.status_code}: {text[:200]}"
                return
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: ") :]
                if data.strip() == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    record.error = f"server error: {str(chunk['error'])[:200]}"
                    return
                if chunk.get("choices"):
                    _take(record, kind.chunk_tokens(chunk["choices"][0]), time.perf_counter() - t0)
                usage = chunk.get("usage")
                if usage:
                    record.prompt_tokens = usage.get("prompt_tokens")
                    record.output_tokens = usage.get("completion_tokens")
        record.end_s = time.perf_counter() - t0
    except (httpx.HTTPError, json.JSONDecodeError, OSError) as e:
        record.error = f"{type(e).__name__}: {str(e)[:200] or 'connection lost'}"


async def _report(records: list[Record], total: int, label: str, t0: float, progress, every_s: float) -> None:
    """A line every `every_s` seconds while the load runs: how many requests have their answer."""
    while True:
        await asyncio.sleep(every_s)
        done = sum(1 for r in records if r.end_s is not None or r.error is not None)
        progress(f"  {label}: {done}/{total} answered after {time.perf_counter() - t0:,.0f} s")


async def _run(
    url: str, kind: ServerKind, model: str, requests: Sequence[ServeRequest], load: Load, timeout_s: float, progress
):
    import httpx

    times = send_times(load, len(requests))
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    records: list[Record] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), limits=limits) as client:
        t0 = time.perf_counter()
        reporter = None
        if progress is not None:
            reporter = asyncio.create_task(_report(records, len(requests), load.label, t0, progress, PROGRESS_EVERY_S))

        async def one(r: ServeRequest, at: float | None = None) -> None:
            if at is not None:
                await asyncio.sleep(max(0.0, at - (time.perf_counter() - t0)))
            record = Record(index=r.index, sent_s=time.perf_counter() - t0)
            records.append(record)
            await _send(client, url, kind, kind.body(model, r), record, t0)
            check(record, r)

        if times is not None:  # open loop: every request at its time, whatever is in flight
            await asyncio.gather(*(one(r, at) for r, at in zip(requests, times)))
        else:  # closed loop: `concurrency` workers, each sending its next request when one returns
            pending = iter(requests)  # shared: each worker takes the next one left

            async def worker() -> None:
                for r in pending:
                    await one(r)

            await asyncio.gather(*(worker() for _ in range(load.concurrency)))
        duration = time.perf_counter() - t0
        if reporter is not None:
            reporter.cancel()
    return sorted(records, key=lambda x: x.index), duration


def run_load(
    url: str,
    kind: ServerKind,
    model: str,
    requests: Sequence[ServeRequest],
    load: Load,
    timeout_s: float = 600.0,
    progress=None,
) -> tuple[list[Record], float]:
    """Send every request under `load` to the server at `url` (`kind` says which fields it takes); return
    each request's record and the load's duration in seconds. `progress` gets a line now and then."""
    return asyncio.run(_run(url.rstrip("/"), kind, model, requests, load, timeout_s, progress))
