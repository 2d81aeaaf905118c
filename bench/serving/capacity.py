"""`pagedbench bench-client`: what the load generator itself sustains, against an instant stub server in
processes of its own (`bench.serving.stub`) — the request rate and streamed tokens per second it reads with
every request sent at once (the stub then runs as several processes on one port, so that it is less often
the limit), and at given rates the latency it adds over the stub's own times (TTFT, ITL, E2E), with its
health (CPU, event-loop lag). A serving figure is the server's only while the load is well below
what the client sustains here, on the same host."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click

from bench.cli_support import Finite, writable_file
from bench.errors import UserError
from bench.metrics import percentile
from bench.serving.server import healthy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_stub_workers() -> int:
    """Stub processes for the all-at-once load: a quarter of the host's CPUs, 1 to 4 (one on a 2-core
    machine, where a second would take the client's core)."""
    return max(1, min(4, (os.cpu_count() or 1) // 4))


class StubServer:
    """The instant stub in `workers` processes of its own on a free port, keeping its own times."""

    def __init__(self, itl_ms: float, workers: int = 1) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "bench.serving.stub", "--port", str(self.port), "--itl-ms", str(itl_ms)]
        cmd += ["--reuse-port"] if workers > 1 else []
        self.procs = [
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            for _ in range(workers)
        ]
        deadline = time.monotonic() + 30
        # Each process answers on its own once it listens; wait for them all.
        while not healthy(self.url) or _listening(self.port) < workers:
            dead = next((p for p in self.procs if p.poll() is not None), None)
            if dead is not None or time.monotonic() > deadline:
                why = dead.stderr.read().decode()[-300:] if dead is not None else "not listening after 30 s"
                self.__exit__()
                raise UserError(f"the stub server did not start: {why}")
            time.sleep(0.1)

    def timings(self) -> list[list[float]]:
        """The stub's own times since the last call (with several processes, those of the one that answers)."""
        with urllib.request.urlopen(f"{self.url}/timings", timeout=10) as r:
            return json.loads(r.read())

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _listening(port: int) -> float:
    """How many sockets listen on 127.0.0.1:port (Linux's /proc/net/tcp; unbounded where it cannot be read,
    the health check then being all there is)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return float("inf")
    want = f"0100007F:{port:04X}"
    return sum(1 for line in lines if line.split()[1] == want and line.split()[3] == "0A")


def _added(records, own: list[list[float]], n: int) -> dict[str, float | None]:
    """What the client's TTFT, ITL and E2E percentiles add over the stub's own (None without its times)."""
    stub_ttft = [1000 * (first - received) for received, first, _ in own]
    stub_e2e = [1000 * (last - received) for received, _, last in own]
    stub_gap = [1000 * (last - first) / (n - 1) for _, first, last in own] if n > 1 else []
    gaps = [1000 * (b - a) for r in records if r.ok for a, b in zip(r.chunk_s, r.chunk_s[1:])]
    added = {}
    for name, mine, theirs in (
        ("ttft", [1000 * (r.first_s - r.sent_s) for r in records if r.ok], stub_ttft),
        ("itl", gaps, stub_gap),
        ("e2e", [1000 * (r.end_s - r.sent_s) for r in records if r.ok], stub_e2e),
    ):
        for q in (50, 99):
            a = percentile(sorted(mine), q) if mine else None
            b = percentile(sorted(theirs), q) if theirs else None
            added[f"{name}_p{q}_ms"] = None if a is None or b is None else a - b
    return added


def measure(stub: StubServer, requests, load) -> dict:
    """One load against the stub: the client's figures, its health and what it added to the stub's times."""
    from bench.serving.client import run_load
    from bench.serving.metrics import summarize
    from bench.serving.stub import STUB

    stub.timings()  # drop the warm-up's
    records, duration, health = run_load(stub.url, STUB, "stub", requests, load)
    s = summarize(records, load, duration)  # the client's own judgement is reported apart, below
    # All at once, a request's wait in the stub's queue would read as added by the client: not compared.
    at_once = load.profile == "concurrency"
    note = "all at once: what a request waits in the stub's queue, not what the client adds" if at_once else None
    n = requests[0].output_len
    added = _added(records, [] if at_once else stub.timings(), n)
    return {
        "load": load.label,
        "requests": len(requests),
        "tokens_per_request": n,
        "completed": s.completed,
        "failed": s.failed,
        "duration_s": duration,
        "achieved_rps": s.achieved_rps,
        "streamed_tokens_per_s": s.output_tokens_per_s,
        "added_ms": added,
        "added_note": note,
        "client": health.model_dump(),
    }


@click.command("bench-client")
@click.option("--requests", type=click.IntRange(2, 100_000), default=512, show_default=True, help="Per load.")
@click.option("--tokens", type=click.IntRange(2, 4096), default=64, show_default=True, help="Streamed per request.")
@click.option(
    "--rate", "rates", type=Finite(min=0, min_open=True, max=1e5), multiple=True,
    help="Poisson loads (req/s) after the all-at-once one (repeatable). [default: 200]",
)  # fmt: skip
@click.option("--itl-ms", type=Finite(min=0, max=1000), default=5.0, show_default=True,
              help="The stub's gap between tokens at the rate loads (all at once: back to back).")  # fmt: skip
@click.option("--stub-workers", type=click.IntRange(1, 64), default=None,
              help="Stub processes for the all-at-once load. [default: a quarter of the CPUs, 1 to 4]")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the figures as JSON here.")
def bench_client(requests, tokens, rates, itl_ms, stub_workers, out):
    """Measure the load generator against an instant stub server: what it sustains, and what it adds."""
    from bench.results.store import write_atomic
    from bench.serving.schedule import Load
    from bench.stacks.base import ServeRequest

    if out is not None:
        writable_file(out, "--out")
    batch = [ServeRequest(i, f"request {i}", 0, tokens) for i in range(requests)]
    # All at once against several stub processes; the rate loads against one, which keeps every time.
    loads = [(Load("concurrency", concurrency=requests), 0.0, stub_workers or default_stub_workers())]
    loads += [(Load("poisson", rate=r, seed=0), itl_ms, 1) for r in (rates or (200.0,))]
    figures = []
    for load, gap, workers in loads:
        with StubServer(gap, workers) as stub:
            measure(stub, batch[:4], Load("concurrency", concurrency=4))  # warm: connections, imports
            f = measure(stub, batch, load) | {"stub_itl_ms": gap, "stub_processes": workers}
            # Not client-bound: the rate read is a lower bound on what the client sustains (the stub or
            # the host set it), and is said so.
            f["limited_by"] = "the client" if f["client"]["bound"] else "not the client: a lower bound on its capacity"
            figures.append(f)
        f = figures[-1]
        add = f["added_ms"]
        ms = lambda x: "—" if x is None else f"{x:+.2f}"  # noqa: E731
        added = (
            f"added TTFT p50/p99 {ms(add['ttft_p50_ms'])}/{ms(add['ttft_p99_ms'])} ms, "
            f"ITL {ms(add['itl_p50_ms'])}/{ms(add['itl_p99_ms'])} ms"
            if f["added_note"] is None
            else f"added latency not measured ({f['added_note']})"
        )
        click.echo(
            f"{f['load']:>22}: {f['completed']}/{f['requests']} in {f['duration_s']:.2f} s, "
            f"{f['achieved_rps']:,.0f} req/s, {f['streamed_tokens_per_s']:,.0f} streamed tok/s "
            f"({f['stub_processes']} stub process{'es' if f['stub_processes'] > 1 else ''}); {added}; "
            f"client CPU {f['client']['cpu_share']:.0%}, loop lag p99 "
            f"{f['client']['loop_lag_ms_p99'] or 0:.1f} ms"
            + (" — CLIENT-BOUND" if f["client"]["bound"] else f" — {f['limited_by']}")
        )
    if out is not None:
        report = {"kind": "client-capacity", "schema_version": 1, "loads": figures}
        write_atomic(out, json.dumps(report, indent=1, allow_nan=False), replace=True)
