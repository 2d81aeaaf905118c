"""The serve cross-check: one file per `scripts/serve_crosscheck.py` run — each load sent to one server by
PagedBench's load generator and by `vllm bench serve`, their figures side by side, run by run, with the
server's own view of the same requests where it was read.

Versioned like the other result files and read back only through `ServeCrosscheck`. Files written before a
field existed lack it: the per-run figures (`*_runs`), the server's view and the verdict; the verdict is
then worked out from what the file has (`verdict`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from bench.results.sections import Section

SERVE_CROSSCHECK_KIND = "serve-crosscheck"
SERVE_CROSSCHECK_VERSION = 1
TARGET = 0.03  # the two clients should agree within this on every figure


def verdict(gap: float | None, mine: list, theirs: list, target: float = TARGET) -> str:
    """Whether the two clients agree on a figure: within the target; apart, where every run of one lies
    beyond every run of the other; or not told apart, where their runs interleave (a load the server
    answers differently from run to run: more repeats would tell)."""
    if gap is None:
        return "not measured"
    if abs(gap) <= target:
        return f"within ±{target:.0%}"
    if len(mine) > 1 and len(theirs) > 1 and None not in mine + theirs:
        if not (max(mine) < min(theirs) or min(mine) > max(theirs)):
            return "not told apart: the two clients' runs interleave"
    return "differs"


class FigureRow(Section):
    """One figure of one load: each client's mean over its runs, their relative difference, the runs."""

    figure: str
    pagedbench: float | None
    vllm_bench_serve: float | None
    difference: float | None  # (PagedBench - vllm bench serve) / vllm bench serve
    pagedbench_runs: list[float | None] = Field(default_factory=list)
    vllm_bench_serve_runs: list[float | None] = Field(default_factory=list)
    # The server's own mean over the requests of each client's runs (its histograms), where it keeps one.
    server_under_pagedbench: float | None = None
    server_under_vllm_bench_serve: float | None = None
    verdict: str | None = None

    def judged(self, target: float) -> str:
        return self.verdict or verdict(self.difference, self.pagedbench_runs, self.vllm_bench_serve_runs, target)


class CrosscheckLoad(Section):
    rate: float | Literal["inf"] | None  # requests per second, or every request at once
    asked: str | None = None  # as given: "inf", "0.5x", "40"
    rows: list[FigureRow]
    worst_difference: float | None = None
    within_target: bool
    repeats: int = Field(default=1, ge=1)
    # Each client's own record of its first run, and of the runs after it (their keys are the tools' own).
    pagedbench: dict[str, Any] = Field(default_factory=dict)
    vllm_bench_serve: dict[str, Any] = Field(default_factory=dict)
    pagedbench_repeats: list[dict[str, Any]] = Field(default_factory=list)
    vllm_bench_serve_repeats: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def label(self) -> str:
        if self.rate == "inf":
            return "all at once"
        shown = f"{self.rate:,.1f} req/s" if self.rate is not None else "?"
        return shown + (f" ({self.asked})" if self.asked and self.asked.endswith("x") else "")


class ServeCrosscheck(Section):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["serve-crosscheck"] = SERVE_CROSSCHECK_KIND
    schema_version: Literal[1] = SERVE_CROSSCHECK_VERSION
    suite: str
    scenario: str
    server: str = "vllm serve"  # or PagedBench's stub (`--stub`)
    requests: int = Field(ge=1)
    repeats: int = Field(default=1, ge=1)
    target: float = TARGET
    request_fields: dict[str, Any] | None = None  # what each client put in its requests besides the prompt
    loads: list[CrosscheckLoad] = Field(default_factory=list)
