"""Figures from a run, computed only after the returned tokens are checked against the workload."""

from __future__ import annotations

from collections.abc import Sequence

from bench.results.schema import Check, Metrics, Percentiles
from bench.stacks.base import RunOutput
from bench.workload import BuiltWorkload


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def percentiles(values: Sequence[float]) -> Percentiles | None:
    if not values:
        return None
    s = sorted(values)
    return Percentiles(
        p50=percentile(s, 50),
        p90=percentile(s, 90),
        p99=percentile(s, 99),
        mean=sum(s) / len(s),
        max=s[-1],
        count=len(s),
    )


def check_output(workload: BuiltWorkload, out: RunOutput) -> Check:
    """Every output exactly its length; with n samples per prompt, each of the n (they count as n)."""
    expected = [r.output_len for r in workload.sequences()]
    returned = list(out.returned_tokens)
    mismatched = [i for i, (e, g) in enumerate(zip(expected, returned)) if e != g]
    if len(returned) != len(expected):
        mismatched += list(range(min(len(expected), len(returned)), max(len(expected), len(returned))))
    return Check(
        expected_requests=len(expected),
        returned_requests=len(returned),
        expected_output_tokens=sum(expected),
        returned_output_tokens=sum(returned),
        mismatched_requests=mismatched[:20],
        distinct_outputs=out.distinct_outputs,
        passed=not mismatched and out.elapsed_s > 0,
    )


def describe_mismatch(check: Check, workload: BuiltWorkload, out: RunOutput) -> str:
    if check.returned_requests != check.expected_requests:
        return f"engine returned {check.returned_requests} of {check.expected_requests} requests"
    i = check.mismatched_requests[0]
    return (
        f"engine returned {check.returned_output_tokens} output tokens, the workload asks for "
        f"{check.expected_output_tokens}; e.g. output {i}: {out.returned_tokens[i]} instead of "
        f"{workload.sequences()[i].output_len} ({len(check.mismatched_requests)}+ outputs differ)"
    )


def compute_metrics(workload: BuiltWorkload, out: RunOutput) -> Metrics:
    """Throughput from the tokens actually returned; latencies from the per-output timings (one per
    request, or one per sample with n samples per prompt)."""
    n = len(workload.requests)
    output_tokens = sum(out.returned_tokens)
    prompt_tokens = workload.prompt_tokens
    t = out.elapsed_s
    ttft = [x.first_token_s * 1000 for x in out.timings if x.first_token_s is not None]
    tpot = [
        ((x.last_token_s if x.last_token_s is not None else x.finish_s) - x.first_token_s) * 1000 / (k - 1)
        for x, k in zip(out.timings, out.returned_tokens)
        if x.first_token_s is not None and k > 1
    ]
    return Metrics(
        elapsed_s=t,
        requests=n,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        output_tokens_per_s=output_tokens / t,
        prompt_tokens_per_s=prompt_tokens / t,
        total_tokens_per_s=(prompt_tokens + output_tokens) / t,
        requests_per_s=n / t,
        latency_ms=percentiles([x.finish_s * 1000 for x in out.timings]),
        ttft_ms=percentiles(ttft),
        tpot_ms=percentiles(tpot),
        latency_source=out.latency_source,
    )
