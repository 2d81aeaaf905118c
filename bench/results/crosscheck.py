"""The cross-check result: one file per `pagedbench crosscheck` (PagedBench's timing of a scenario against
the plainest loop on the same loaded engine, repeat by repeat, in alternating order).

Versioned like the offline and serving results and read back only through `CrosscheckResult`. Files
written before it carried a version are version 1: the fields a later version added are absent there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from bench.results.sections import Environment, Section

CROSSCHECK_KIND = "crosscheck"
CROSSCHECK_VERSION = 1


class CrosscheckRepeat(Section):
    """One repeat: each arm's tokens, seconds and tokens/s (`<arm>_tokens`, `<arm>_elapsed_s`,
    `<arm>_tokens_per_s` for the arms `order` names), PagedBench's difference from the plain loop, and
    what the sampler cost where its arm ran."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)  # one set of fields per arm

    repeat: int = Field(ge=0)
    order: list[str] = Field(default_factory=list)
    plain_tokens_per_s: float = Field(gt=0)
    pagedbench_tokens_per_s: float = Field(gt=0)
    difference: float
    sampler_overhead: float | None = None


class CrosscheckResult(Section):
    kind: Literal["crosscheck"] = CROSSCHECK_KIND
    schema_version: Literal[1] = CROSSCHECK_VERSION
    complete: bool = True  # False: stopped early; the figures cover the repeats listed
    run_id: str | None = None
    stack: str
    scenario: str
    suite: str | None = None
    model: str | None = None
    workload_hash: str | None = None
    expected_tokens: int | None = None
    sample_interval_ms: int | None = None
    environment: Environment | None = None
    load: dict[str, float | str | None] = Field(default_factory=dict)  # the engine's load timings
    results: list[str] = Field(default_factory=list)  # PagedBench's runs, written as ordinary results
    repeats: list[CrosscheckRepeat] = Field(default_factory=list)
    # Over the repeats (absent until one finished).
    mean_difference: float | None = None
    difference_ci95: float | None = None
    spread: float | None = None
    tokens_match: bool | None = None
    verdict: str | None = None
    agrees: bool | None = None
    threshold: float
    pagedbench_cv: float | None = None
    plain_cv: float | None = None
    sampler_overhead: float | None = None
    sampler_overhead_spread: float | None = None
    sampler_overhead_limit: float | None = None
    sampler_within_limit: bool | None = None
