"""One stack's server under a sweep of loads: started once, warmed up, each load sent in turn while its
KV figures are scraped, the whole written as one result file. Requests that failed are counted in it; a
server that dies mid-sweep ends the sweep, keeping every request already answered; an interrupt (Ctrl-C,
SIGTERM) ends it keeping every load that finished, the result marked interrupted."""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from bench import interrupts
from bench.results.serving import LoadFigures, LoadResult, ServingResult
from bench.results.store import write_atomic
from bench.serving.client import run_load
from bench.serving.metrics import columns, summarize
from bench.serving.schedule import Load
from bench.serving.server import healthy, serve
from bench.stacks.base import ServeRequest, ServerKind
from bench.telemetry.energy import phase_energy
from bench.telemetry.gpu import gpu_list, idle_power
from bench.telemetry.sampler import Sampler


def parse_metrics(text: str, names: dict[str, str]) -> dict[str, float]:
    """The metrics `names` maps (the server's name -> ours) found in a Prometheus text page, summed over
    their label sets."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in names:
            values[names[name]] = values.get(names[name], 0.0) + float(line.rsplit(" ", 1)[1])
    return values


@dataclass
class Scraper:
    """Reads the server's metrics page every `interval_s` in a thread, onto one time axis (seconds since
    the sweep began, the axis the loads' start times use)."""

    url: str | None
    t0: float
    names: dict[str, str] = field(default_factory=dict)
    interval_s: float = 0.5
    samples: list[dict] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self):
        if self.url:
            self._thread = threading.Thread(target=self._loop, name="pagedbench-scrape", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    values = parse_metrics(r.read().decode(errors="replace"), self.names)
            except OSError:
                continue  # a missed sample, not a failed run
            self.samples.append({"t_s": time.perf_counter() - self.t0, **values})

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.url:
            self._thread.join(timeout=5)


def warm_up(url: str, kind: ServerKind, requests: list[ServeRequest]) -> None:
    """Two requests, one at a time, before any load: the server's first requests are its slowest."""
    run_load(url, kind, "model", requests[:2], Load("concurrency", concurrency=1))


class ServeInputs(NamedTuple):
    """A scenario as the serving driver runs it, prepared once: the model's directory, the workload as text
    prompts, and the settings its server is started with (the scenario's engine settings, as offline; each
    server's command takes those it knows)."""

    model_dir: Path
    requests: list[ServeRequest]
    settings: dict


def server_inputs(suite, scenario, device: str) -> ServeInputs:
    """What a server run of the suite's scenario needs (`ServeInputs`)."""
    from bench.context import materialize
    from bench.models import parse_model
    from bench.serving.requests import serve_requests

    model_dir = materialize(parse_model(suite.model))
    requests = serve_requests(scenario.workload, suite.workloads[scenario.workload], model_dir)
    settings = {k: v for k, v in scenario.engine_settings().items() if v is not None}
    return ServeInputs(model_dir, requests, settings | {"device": device})


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a sweep: the loads that finished are kept."""


def sweep(
    kind: ServerKind,
    model_dir: Path,
    requests: list[ServeRequest],
    loads: list[Load],
    log: Path,
    port: int,
    identity: dict,
    settings: dict | None = None,
    slos: dict[str, float] | None = None,
    progress=print,
    gpus: int = 0,
) -> ServingResult:
    """Run every load against one server; return the result. `identity`: the run id, stack, suite,
    scenario, model and workload the result names; `gpus`: the GPUs the server holds (none on a CPU),
    whose energy each load records."""
    held = gpu_list(gpus)  # none on a CPU, or where NVML sees none
    gpus, idle = len(held), idle_power(held) if held else None  # idle: before the server holds them
    result = ServingResult(
        **identity, server=kind.name, settings=settings or {}, slos=slos or {}, requests=len(requests)
    )
    with interrupts.raising(SweepInterrupted):
        try:
            with serve(kind, model_dir, port, log, settings) as server:
                url = server.url
                warm_up(url, kind, requests)
                # The server's memory (NVML, host RSS) by the run's monitor process, its KV gauges by the
                # scraper, both on one time axis: seconds since the sampler started.
                memory = Sampler(interval_ms=500, pid=server.pid)
                scrape_url = f"{url}{kind.metrics_path}" if kind.metrics_path else None
                with memory, Scraper(scrape_url, time.perf_counter() - memory.now(), kind.metrics) as scraper:
                    try:
                        _loads(result, kind, url, requests, loads, slos, memory, progress)
                    finally:
                        memory.mark("after")  # the last load's end, with the energy counters
                        result.timeline = scraper.samples
                        result.memory = memory.memory("server")
                        for entry in result.loads:
                            entry.energy = _load_energy(result.memory, entry, gpus, idle)
        except SweepInterrupted:
            done = len(result.loads)
            result.status, result.error = "interrupted", f"interrupted after {done} of {len(loads)} load(s)"
    if result.status == "ok" and any(entry.failed for entry in result.loads):
        result.status, result.error = "failed", "some requests failed (see each load's errors)"
    return result


def _loads(result: ServingResult, kind, url, requests, loads, slos, memory, progress) -> None:
    for load in loads:
        memory.mark(load.label)
        started = memory.now()
        records, duration, health = run_load(url, kind, "model", requests, load, progress=progress)
        summary = summarize(records, load, duration, slos, health)
        result.loads.append(LoadResult(**summary.model_dump(), started_s=started, records=columns(records)))
        progress(one_line(summary))
        if not healthy(url):
            result.status, result.error = "failed", f"{kind.name} stopped answering during {load.label}"
            return


def _load_energy(memory, entry: LoadResult, gpus: int, idle: list[float] | None):
    """The server's GPUs' energy over one load, per token the load's answers carried."""
    r = entry.records
    tokens = sum(x or 0 for x in r.output_tokens), sum(x or 0 for x in r.prompt_tokens)
    return phase_energy(memory, entry.load, gpus, *tokens, idle_power=idle)


def one_line(s: LoadFigures) -> str:
    p = lambda x: f"{x.p50:,.0f}/{x.p99:,.0f}" if x else "—"  # noqa: E731
    good = f", goodput {s.goodput_rps:.2f} req/s" if s.goodput_rps is not None else ""
    failed = f"; {s.failed} FAILED: {s.errors[0]}" if s.failed else ""
    notes = "".join(f"; {why}" for why in dict.fromkeys(s.unmeasured.values()))
    return (
        f"{s.load}: {s.completed}/{s.requests} ok, {s.achieved_rps:.2f} req/s, "
        f"{s.output_tokens_per_s:,.0f} output tok/s, TTFT p50/p99 {p(s.ttft_ms)} ms, "
        f"TPOT {p(s.tpot_ms)} ms{good}{failed}{notes}"
    )


def write(result: ServingResult, path: Path) -> None:
    write_atomic(path, result.model_dump_json(indent=None), replace=True)
