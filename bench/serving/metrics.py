"""Serving figures from the load generator's records, with the definitions written out (they differ
between tools): TTFT — send to the first streamed chunk; E2E — send to the last byte; TPOT — (E2E − TTFT)
÷ (output tokens − 1), per request; ITL — the gaps between consecutive streamed chunks that carried
output (a chunk the server filled with several tokens is one gap, as vllm bench serve counts it);
goodput — completed requests per second that met every SLO given; a request of one output token has no
TPOT and meets any TPOT limit.

A load whose server did not stream (most answers of several tokens came in one chunk) has no first-token
time to measure:
its TTFT, TPOT and ITL are left out, with the reason, never given as the figures of a stream."""

from __future__ import annotations

from collections.abc import Sequence

from bench.metrics import percentiles
from bench.results.schema import Percentiles
from bench.results.serving import ClientHealth, LoadFigures, RequestColumns
from bench.serving.client import Record
from bench.serving.schedule import Load

SLO_KEYS = ("ttft_ms_p99", "tpot_ms_p99", "e2e_ms_p99")  # per-request limits, named for the percentile asked
# A load streamed when at least this share of its multi-token answers came in several chunks: a loaded
# vLLM merges some short answers into one chunk (13 % of 1,024 sent at once on an H100); a server that
# streams nothing sends them all whole.
STREAMED_SHARE = 0.5


def _ms(values) -> Percentiles | None:
    return percentiles([1000.0 * v for v in values])


def streaming(done: Sequence[Record]) -> tuple[float | None, str | None]:
    """Output tokens per chunk over the completed requests, and why the load did not stream (None when it
    did): answers of several tokens that came in one chunk carry no first-token time."""
    chunks = sum(len(r.chunk_s) for r in done)
    tokens = sum(r.output_tokens or 0 for r in done)
    several = [r for r in done if (r.output_tokens or 0) > 1]
    whole = sum(1 for r in several if len(r.chunk_s) < 2)
    why = None
    if several and (len(several) - whole) < STREAMED_SHARE * len(several):
        why = (
            f"the server did not stream: {whole} of {len(several)} answers of several tokens came in one chunk, "
            "so the first chunk's time is the whole answer's"
        )
    return (tokens / chunks if chunks else None), why


def per_request(r: Record) -> dict[str, float | None]:
    e2e = r.end_s - r.sent_s if r.end_s is not None else None
    ttft = r.first_s - r.sent_s if r.first_s is not None else None
    tpot = None
    if e2e is not None and ttft is not None and r.output_tokens and r.output_tokens > 1:
        tpot = (e2e - ttft) / (r.output_tokens - 1)
    return {"ttft": ttft, "tpot": tpot, "e2e": e2e}


def meets(figures: dict[str, float | None], slos: dict[str, float]) -> bool:
    """Whether one request met every SLO (limits in ms). A request of one output token has no TPOT: it
    meets a TPOT limit (there was no second token to wait for)."""
    for key, limit in slos.items():
        name = key.split("_")[0]
        value = figures[name]
        if value is None and name == "tpot" and figures["ttft"] is not None:
            continue
        if value is None or 1000.0 * value > limit:
            return False
    return True


def summarize(
    records: Sequence[Record],
    load: Load,
    duration_s: float,
    slos: dict[str, float] | None = None,
    client: ClientHealth | None = None,
) -> LoadFigures:
    done = [r for r in records if r.ok]
    figures = [per_request(r) for r in done]
    counts: dict[str, int] = {}
    for r in records:
        if r.error:
            counts[r.error] = counts.get(r.error, 0) + 1
    itl = [b - a for r in done for a, b in zip(r.chunk_s, r.chunk_s[1:])]
    tokens_per_chunk, not_streamed = streaming(done)
    unmeasured = {}
    if not_streamed:
        unmeasured = dict.fromkeys(("ttft_ms", "tpot_ms", "itl_ms"), not_streamed)
        if slos:
            unmeasured["goodput_rps"] = not_streamed
    if client is not None and client.bound:
        unmeasured |= dict.fromkeys(
            ("achieved_rps", "output_tokens_per_s", "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "goodput_rps"),
            f"client-bound: {client.reason}",
        )
    figures_of = lambda key, values: None if key in unmeasured else _ms(values)  # noqa: E731
    return LoadFigures(
        load=load.label,
        offered_rps=load.rate,
        duration_s=duration_s,
        requests=len(records),
        completed=len(done),
        failed=len(records) - len(done),
        errors=[f"{n} × {e}" for e, n in sorted(counts.items(), key=lambda x: -x[1])[:5]],
        achieved_rps=len(done) / duration_s if duration_s > 0 else 0.0,
        output_tokens_per_s=sum(r.output_tokens or 0 for r in done) / duration_s if duration_s > 0 else 0.0,
        goodput_rps=(
            (sum(meets(f, slos) for f in figures) / duration_s)
            if slos and duration_s > 0 and "goodput_rps" not in unmeasured
            else None
        ),
        ttft_ms=figures_of("ttft_ms", [f["ttft"] for f in figures if f["ttft"] is not None]),
        tpot_ms=figures_of("tpot_ms", [f["tpot"] for f in figures if f["tpot"] is not None]),
        itl_ms=figures_of("itl_ms", itl),
        e2e_ms=figures_of("e2e_ms", [f["e2e"] for f in figures if f["e2e"] is not None]),
        tokens_per_chunk=tokens_per_chunk,
        unmeasured=unmeasured,
        client=client,
    )


def columns(records: Sequence[Record]) -> RequestColumns:
    """The records as the result stores them: a column per field, chunk times in µs after each send."""
    ordered = sorted(records, key=lambda r: r.index)
    return RequestColumns(
        index=[r.index for r in ordered],
        sent_s=[round(r.sent_s, 6) for r in ordered],
        end_s=[None if r.end_s is None else round(r.end_s, 6) for r in ordered],
        prompt_tokens=[r.prompt_tokens for r in ordered],
        output_tokens=[r.output_tokens for r in ordered],
        streamed_tokens=[r.streamed_tokens for r in ordered],
        chunks=[len(r.chunk_s) for r in ordered],
        chunk_us=[round(1e6 * (t - r.sent_s)) for r in ordered for t in r.chunk_s],
        error=[r.error for r in ordered],
    )
