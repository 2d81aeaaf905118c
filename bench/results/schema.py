"""The result file: one per (run, stack, scenario, repeat). Versioned and self-describing.

Bump SCHEMA_VERSION on any change that an older reader would misread, and keep the reader strict:
results are loaded only through `Result.model_validate`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bench.results.sections import (
    Breakdown,
    Energy,
    Environment,
    Kv,
    Roofline,
    RunConfig,
    Section,
    Timing,
    WorkloadSummary,
)

SCHEMA_VERSION = 2  # 2: typed sections (kv by layout, config with the stack's options); 1 is read by v1.py


_Model = Section  # one strictness for every part of a result: no unknown key, no NaN figure


class Percentiles(_Model):
    p50: float
    p90: float
    p99: float
    mean: float
    max: float
    count: int = Field(ge=1)


class Metrics(_Model):
    elapsed_s: float = Field(gt=0)
    requests: int = Field(ge=1)
    prompt_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=1)  # counted from what the engine returned
    output_tokens_per_s: float = Field(gt=0)
    prompt_tokens_per_s: float = Field(ge=0)
    total_tokens_per_s: float = Field(gt=0)
    requests_per_s: float = Field(gt=0)
    # Latencies are measured from the start of the timed run, when every request was submitted
    # (offline semantics): a request that waits for an earlier batch pays that wait.
    latency_ms: Percentiles
    ttft_ms: Percentiles | None = None
    # Time per output token after the first, per request: (finish - first token) / (output_len - 1).
    tpot_ms: Percentiles | None = None
    latency_source: str  # how the per-request times were obtained
    # Decode bytes read (weights + KV) over the copy bandwidth measured in the same run: a floor on time.
    roofline: Roofline | None = None

    @model_validator(mode="after")
    def _consistent(self):
        def close(a: float, b: float) -> bool:
            return abs(a - b) <= 1e-6 * max(1.0, abs(b))

        if not close(self.output_tokens_per_s, self.output_tokens / self.elapsed_s):
            raise ValueError("output_tokens_per_s != output_tokens / elapsed_s")
        if not close(self.requests_per_s, self.requests / self.elapsed_s):
            raise ValueError("requests_per_s != requests / elapsed_s")
        return self


class Check(_Model):
    """The figures are reported only if the engine returned exactly the workload's tokens. With n samples per
    prompt, each sample counts as a request here."""

    expected_requests: int
    returned_requests: int
    expected_output_tokens: int
    returned_output_tokens: int
    mismatched_requests: list[int] = Field(default_factory=list)  # first few indices
    # With several outputs per request (n samples, beams): how many of each request's differ as token
    # sequences, summed (= expected_requests when all do). None with one output per request.
    distinct_outputs: int | None = None
    passed: bool


class GpuSample(_Model):
    """One device's reading, where a run spans several."""

    index: int | str  # NVML index or UUID
    used_mib: float | None = None
    process_used_mib: float | None = None  # this run's processes on it
    power_w: float | None = None


class GpuPeak(_Model):
    index: int | str
    peak_used_mib: float | None = None
    peak_process_used_mib: float | None = None


class Sample(_Model):
    t_s: float  # seconds since the sampler started
    phase: str
    device_used_mib: float | None = None
    process_used_mib: float | None = None
    gpu_util_pct: float | None = None
    power_w: float | None = None
    host_rss_mib: float | None = None
    host_cpu_pct: float | None = None
    engine: dict[str, float] | None = None  # stack-reported gauges, e.g. vLLM KV usage
    gpus: list[GpuSample] | None = None  # every device, where the run's CUDA sees several


class Phase(_Model):
    name: str
    start_s: float
    end_s: float | None = None
    # Each GPU's energy counter at the phase's start (J since its driver loaded), the first device the run
    # uses first; None where a device has no counter.
    energy_j: list[float | None] | None = None


class Memory(_Model):
    device: str  # "cuda:0" | "cpu"
    source: str  # how memory was read, e.g. "nvml device-wide + per-process" or "host RSS (no NVIDIA device)"
    sample_interval_ms: float
    t0_unix: float | None = None  # the wall clock (Unix seconds) when t_s was 0, to line phases up with other tools
    device_total_mib: float | None = None
    # at sampler start: before the model loaded, or, on an engine an earlier scenario used, once it was settled
    device_used_before_mib: float | None = None
    peak_device_used_mib: float | None = None
    peak_process_used_mib: float | None = None
    torch_peak_allocated_mib: float | None = None
    torch_peak_reserved_mib: float | None = None
    weights_mib: float | None = None
    peak_host_rss_mib: float | None = None
    per_gpu: list[GpuPeak] = Field(default_factory=list)  # where the run's CUDA sees several devices
    timeline: list[Sample] = Field(default_factory=list)
    phases: list[Phase] = Field(default_factory=list)
    breakdown: Breakdown | None = None


class ModelInfo(_Model):
    spec: str
    source: Literal["synthetic", "local", "hub"]
    path: str | None = None
    preset: str | None = None
    seed: int | None = None
    architecture: str | None = None
    params: int | None = None
    dtype: str
    max_model_len: int
    kv_bytes_per_token: int | None = None


OFFLINE_KIND = "offline"


class Result(_Model):
    # Which kind of file this is (serving results say "serving", cross-checks "crosscheck"); files written
    # before it existed are offline results.
    kind: Literal["offline"] = OFFLINE_KIND
    schema_version: Literal[2] = SCHEMA_VERSION  # bump on breaking changes
    run_id: str
    suite: str
    scenario: str
    stack: str
    mode: str
    repeat: int = Field(ge=0)
    status: Literal["ok", "failed", "interrupted"]
    error: str | None = None
    is_measurement: bool = True  # False for the fake runner: never presented as numbers
    started_at: str
    finished_at: str
    model: ModelInfo | None = None
    workload: WorkloadSummary
    config: RunConfig
    environment: Environment
    timing: Timing = Field(default_factory=Timing)
    metrics: Metrics | None = None
    check: Check | None = None
    memory: Memory | None = None
    energy: Energy | None = None
    kv: Kv | None = None
    log_file: str | None = None

    @model_validator(mode="after")
    def _status_consistent(self):
        if self.status == "ok":
            if self.metrics is None or self.check is None or not self.check.passed:
                raise ValueError("status 'ok' needs metrics and a passed check")
            if self.check.returned_output_tokens != self.metrics.output_tokens:
                raise ValueError("metrics.output_tokens differs from the tokens the check counted")
        else:
            if self.metrics is not None:
                raise ValueError(f"status {self.status!r} must carry no metrics")
            if not self.error:
                raise ValueError(f"status {self.status!r} needs an error message")
        return self
