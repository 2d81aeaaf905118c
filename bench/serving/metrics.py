"""Serving figures from the load generator's records, with the definitions written out (they differ
between tools): TTFT — send to the first streamed chunk; E2E — send to the last byte; TPOT — (E2E − TTFT)
÷ (output tokens − 1), per request; ITL — the gaps between consecutive streamed chunks that carried
output (a chunk the server filled with several tokens is one gap, as vllm bench serve counts it);
goodput — completed requests per second that met every SLO given."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from bench.metrics import percentiles
from bench.results.schema import Percentiles
from bench.serving.client import Record
from bench.serving.schedule import Load

SLO_KEYS = ("ttft_ms_p99", "tpot_ms_p99", "e2e_ms_p99")  # per-request limits, named for the percentile asked


class LoadSummary(BaseModel):
    load: str
    offered_rps: float | None
    duration_s: float
    requests: int
    completed: int
    failed: int
    errors: list[str]  # the first few reasons, with how many requests had each
    achieved_rps: float
    output_tokens_per_s: float
    goodput_rps: float | None
    ttft_ms: Percentiles | None
    tpot_ms: Percentiles | None
    itl_ms: Percentiles | None
    e2e_ms: Percentiles | None


def _ms(values) -> Percentiles | None:
    return percentiles([1000.0 * v for v in values])


def per_request(r: Record) -> dict[str, float | None]:
    e2e = r.end_s - r.sent_s if r.end_s is not None else None
    ttft = r.first_s - r.sent_s if r.first_s is not None else None
    tpot = None
    if e2e is not None and ttft is not None and r.output_tokens and r.output_tokens > 1:
        tpot = (e2e - ttft) / (r.output_tokens - 1)
    return {"ttft": ttft, "tpot": tpot, "e2e": e2e}


def meets(figures: dict[str, float | None], slos: dict[str, float]) -> bool:
    """Whether one request met every SLO (limits in ms)."""
    for key, limit in slos.items():
        value = figures[key.split("_")[0]]
        if value is None or 1000.0 * value > limit:
            return False
    return True


def summarize(records: Sequence[Record], load: Load, duration_s: float, slos: dict[str, float] | None = None):
    done = [r for r in records if r.ok]
    figures = [per_request(r) for r in done]
    counts: dict[str, int] = {}
    for r in records:
        if r.error:
            counts[r.error] = counts.get(r.error, 0) + 1
    itl = [b - a for r in done for a, b in zip(r.chunk_s, r.chunk_s[1:])]
    return LoadSummary(
        load=load.label,
        offered_rps=load.rate,
        duration_s=duration_s,
        requests=len(records),
        completed=len(done),
        failed=len(records) - len(done),
        errors=[f"{n} × {e}" for e, n in sorted(counts.items(), key=lambda x: -x[1])[:5]],
        achieved_rps=len(done) / duration_s if duration_s > 0 else 0.0,
        output_tokens_per_s=sum(r.output_tokens or 0 for r in done) / duration_s if duration_s > 0 else 0.0,
        goodput_rps=(sum(meets(f, slos) for f in figures) / duration_s) if slos and duration_s > 0 else None,
        ttft_ms=_ms([f["ttft"] for f in figures if f["ttft"] is not None]),
        tpot_ms=_ms([f["tpot"] for f in figures if f["tpot"] is not None]),
        itl_ms=_ms(itl),
        e2e_ms=_ms([f["e2e"] for f in figures if f["e2e"] is not None]),
    )
