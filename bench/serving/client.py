"""The load generator: the same requests to either server over its OpenAI-compatible /v1/completions,
streamed, each forced to exactly its output length with the fields that server accepts, every answer
checked against the workload. A request that fails (an HTTP error, a dropped connection, a wrong length)
is recorded as failed with the reason, never dropped; those already answered are kept.

The client must never be what limits a load: one aiohttp connection pool, bodies and schedule built before
the clock starts, per chunk only a time, a JSON parse and a token count, uvloop where installed. Its own
health is measured during every load (`_Health`), and a load it could not keep up with is marked
client-bound. `pagedbench bench-client` measures what it sustains against an instant stub server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench import interrupts
from bench.metrics import percentile
from bench.results.serving import ClientHealth
from bench.serving.schedule import Load, send_times
from bench.stacks.base import ServeRequest, ServerKind

PROGRESS_EVERY_S = 15.0  # a line this often while a load runs
# A load is client-bound (its figures the client's, not the server's) when the client's one event loop
# was busy all the time, or woke, or sent, later than this at its 99th percentile.
CLIENT_CPU_BOUND = 0.9
CLIENT_LAG_BOUND_MS = 10.0


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


async def _send(session, url: str, kind: ServerKind, body: dict, record: Record, t0: float) -> None:
    """One request, streamed. Per chunk: the time, one JSON parse and the token count; nothing else."""
    import aiohttp

    clock = time.perf_counter
    take = kind.chunk_tokens
    try:
        async with session.post(f"{url}/v1/completions", json=body) as response:
            if response.status != 200:
                text = (await response.read()).decode(errors="replace")
                record.error = f"HTTP {response.status}: {text[:200]}"
                return
            async for line in response.content:
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    break
                at = clock() - t0
                chunk = json.loads(data)
                if "error" in chunk:
                    record.error = f"server error: {str(chunk['error'])[:200]}"
                    return
                choices = chunk.get("choices")
                if choices:
                    tokens = take(choices[0])
                    if tokens is not None or choices[0].get("text"):  # a closing chunk without text carried none
                        _take(record, tokens, at)
                usage = chunk.get("usage")
                if usage:
                    record.prompt_tokens = usage.get("prompt_tokens")
                    record.output_tokens = usage.get("completion_tokens")
        record.end_s = clock() - t0
    except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError, OSError) as e:
        record.error = f"{type(e).__name__}: {str(e)[:200] or 'connection lost'}"


async def _report(records: list[Record], total: int, label: str, t0: float, progress, every_s: float) -> None:
    """A line every `every_s` seconds while the load runs: how many requests have their answer."""
    while True:
        await asyncio.sleep(every_s)
        done = sum(1 for r in records if r.end_s is not None or r.error is not None)
        progress(f"  {label}: {done}/{total} answered after {time.perf_counter() - t0:,.0f} s")


class _Health:
    """The client's own state during a load: how late its event loop wakes (a loop busy with other work
    reads each chunk late, and its times are late by as much), how late requests leave against their
    schedule, and the CPU time it used."""

    TICK_S = 0.005

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.send_lags: list[float] = []
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()

    async def watch(self, load: asyncio.Task) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.TICK_S)
            self.lags.append(max(0.0, time.perf_counter() - before - self.TICK_S))
            if interrupts.stopped():  # Ctrl-C or SIGTERM: the load ends, and the stop is raised after the loop
                load.cancel()
                return

    def result(self) -> ClientHealth:
        wall = time.perf_counter() - self.wall0
        lag, send = _p99_max(self.lags), _p99_max(self.send_lags)
        share = (time.process_time() - self.cpu0) / wall if wall > 0 else None
        reasons = []
        if share is not None and share >= CLIENT_CPU_BOUND:
            reasons.append(f"the client used {share:.0%} of a core (its event loop runs on one)")
        if lag[0] is not None and lag[0] > CLIENT_LAG_BOUND_MS:
            reasons.append(f"its event loop woke {lag[0]:,.1f} ms late at p99 (limit {CLIENT_LAG_BOUND_MS:g} ms)")
        if send[0] is not None and send[0] > CLIENT_LAG_BOUND_MS:
            reasons.append(f"requests left {send[0]:,.1f} ms behind their schedule at p99")
        return ClientHealth(
            loop_lag_ms_p99=lag[0],
            loop_lag_ms_max=lag[1],
            send_lag_ms_p99=send[0],
            cpu_share=share,
            bound=bool(reasons),
            reason="; ".join(reasons) or None,
        )


def _p99_max(values: list[float]) -> tuple[float | None, float | None]:
    """p99 and max, in ms."""
    if not values:
        return None, None
    s = sorted(values)
    return 1000.0 * percentile(s, 99), 1000.0 * s[-1]


def _event_loop_policy():
    """uvloop's where installed (vllm bench serve's client runs on it too), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.EventLoopPolicy()


async def _run(
    url: str, kind: ServerKind, model: str, requests: Sequence[ServeRequest], load: Load, timeout_s: float, progress
):
    import aiohttp

    times = send_times(load, len(requests))
    bodies = [kind.body(model, r) for r in requests]  # built before the clock starts
    records = [Record(index=r.index, sent_s=0.0) for r in requests]
    sent: list[Record] = []
    # One connection pool without a limit (vllm bench serve's client is set up the same way): every
    # request of an open-loop schedule leaves at its time, whatever is in flight.
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, force_close=False, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
        health = _Health()
        watcher = asyncio.create_task(health.watch(asyncio.current_task()))
        t0 = time.perf_counter()
        reporter = None
        if progress is not None:
            reporter = asyncio.create_task(_report(sent, len(requests), load.label, t0, progress, PROGRESS_EVERY_S))

        async def one(k: int, at: float | None = None) -> None:
            if at is not None:
                delay = at - (time.perf_counter() - t0)
                if delay > 0:
                    await asyncio.sleep(delay)
            record = records[k]
            record.sent_s = time.perf_counter() - t0
            if at is not None:
                health.send_lags.append(max(0.0, record.sent_s - at))
            sent.append(record)
            await _send(session, url, kind, bodies[k], record, t0)
            check(record, requests[k])

        if times is not None:  # open loop: every request at its time, whatever is in flight
            await asyncio.gather(*(one(k, at) for k, at in enumerate(times)))
        else:  # closed loop: `concurrency` workers, each sending its next request when one returns
            pending = iter(range(len(requests)))  # shared: each worker takes the next one left

            async def worker() -> None:
                for k in pending:
                    await one(k)

            await asyncio.gather(*(worker() for _ in range(min(load.concurrency, len(requests)))))
        duration = time.perf_counter() - t0
        for task in (watcher, reporter):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (watcher, reporter) if t is not None), return_exceptions=True)
    return sorted(records, key=lambda x: x.index), duration, health.result()


async def _settled(tasks) -> None:
    """Every task done, whatever it raised (gathered inside the loop that runs them)."""
    await asyncio.gather(*tasks, return_exceptions=True)


def run_load(
    url: str,
    kind: ServerKind,
    model: str,
    requests: Sequence[ServeRequest],
    load: Load,
    timeout_s: float = 600.0,
    progress=None,
) -> tuple[list[Record], float, ClientHealth]:
    """Send every request under `load` to the server at `url` (`kind` says which fields it takes); return
    each request's record, the load's duration in seconds and the client's own health during it.
    `progress` gets a line now and then."""
    policy = _event_loop_policy()
    loop = policy.new_event_loop() if policy is not None else asyncio.new_event_loop()
    # A stop only marks itself while the loop runs; the watcher ends the load, and it is raised out here.
    with interrupts.deferred():
        try:
            task = loop.create_task(_run(url.rstrip("/"), kind, model, requests, load, timeout_s, progress))
            try:
                done = loop.run_until_complete(task)
                interrupts.check()  # a stop that came as the load ended: it is not kept either
                return done
            except BaseException:  # the load cancelled, or an error: every request is cancelled and closed
                pending = asyncio.all_tasks(loop)
                for t in pending:
                    t.cancel()
                loop.run_until_complete(_settled(pending))
                interrupts.check()
                raise
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
