"""The typed sections of a result: what ran (config, workload, environment) and what was measured (KV
accounting, roofline, memory breakdown). The report reads them by attribute, never by string key, and
branches on what they say (`kv.layout`), never on a stack's name."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.config import Workload


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # a NaN figure is no figure


# --- what ran ----------------------------------------------------------------------------------------------

Scalar = int | float | bool | str | None


class RunConfig(Section):
    """The scenario as it ran: what every stack has, resolved, and the stack's own knobs in `options`."""

    name: str
    stack: str
    mode: str  # resolved
    workload: str
    dtype: str  # resolved
    max_model_len: int
    warmup_requests: int
    timeout_s: float
    repeats: int = 1  # timed runs the suite asked for
    memory_budget_gib: float | None = None
    device: str  # "cuda" | "cpu"
    sample_interval_ms: float
    sampler: bool = True  # False: background sampling was off (readings at phase boundaries only)
    options: dict[str, Scalar] = Field(default_factory=dict)  # the stack's knobs, as given


class LengthStats(Section):
    min: int
    mean: float
    max: int


class WorkloadSummary(Section):
    name: str
    hash: str = Field(min_length=1)  # what may be compared with what
    requests: int = Field(ge=1)
    prompt_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=1)
    prompt_len: LengthStats
    output_len: LengthStats
    temperature: float
    top_p: float
    seed: int
    spec: Workload  # as the suite gave it


class GpuInfo(Section):
    name: str
    uuid: str | None = None
    index: int | None = None
    driver: str | None = None
    cuda_driver: str | None = None
    memory_total_mib: float | None = None


class GpuProcess(Section):
    pid: int
    used_mib: float | None = None


class GitInfo(Section):
    sha: str | None = None
    dirty: bool | None = None


class Environment(Section):
    pagedbench: str
    python: str
    platform: str
    cpu: str | None = None
    cpu_count: int | None = None
    host_memory_mib: float | None = None
    packages: dict[str, str | None] = Field(default_factory=dict)
    git: GitInfo = Field(default_factory=GitInfo)
    image: str | None = None
    cuda_variant: str | None = None
    lock: str | None = None  # the image's lock file (docker/locks/)
    gpu: GpuInfo | None = None
    gpu_processes_before: list[GpuProcess] | None = None
    torch_cuda: str | None = None
    torch_threads: int | None = None
    torch_cudnn: int | None = None  # cuDNN's version as torch reports it (91500 for 9.15)
    sdpa_backends: dict[str, bool] | None = None  # scaled_dot_product_attention's backends enabled
    settings: dict[str, str] | None = None  # PYTORCH_*, TORCH_*, CUDA_*, VLLM_*, ... variables set for the run
    device: str | None = None
    copy_bandwidth_gbps: float | None = None


# --- what was measured ---------------------------------------------------------------------------------


class Timing(Section):
    """Where a scenario's wall time went: the user's time, apart from the timed figures."""

    # From the process's start to the run's: the interpreter, imports, reading the suite; on the run's
    # first result only.
    process_start_s: float | None = None
    # The run's one-off work before its first scenario (building or fetching the model, reading the GPU,
    # measuring bandwidth, building the workloads); on the run's first result only.
    setup_s: float | None = None
    load_s: float | None = None  # loading the weights, or starting the engine (engine_start_s)
    engine_start_s: float | None = None
    engine_reused: bool = False  # the engine of an earlier scenario of the run served this one
    # Whether the engine's compile cache held what this start needed ("warm") or was filled by it ("cold");
    # None where the stack compiles nothing it caches.
    compile_cache: Literal["cold", "warm"] | None = None
    warmup_s: float | None = None
    warmup_shared: bool = False  # an earlier scenario warmed up on the same shapes: no warm-up of its own
    timed_s: float | None = None  # the timed run
    wall_s: float | None = None  # the whole scenario, load to result


class Probe(Section):
    """One batch size tried by a capacity search."""

    batch_size: int
    fits: bool
    batches_probed: int | None = None
    seconds: float | None = None
    torch_peak_allocated_mib: float | None = None
    error: str | None = None
    during: str | None = None  # "full run": it failed in the timed run, not in the search


class Capacity(Section):
    max_batch: int | None = None
    first_failing_batch: int | None = None
    bounded_by: str | None = None
    memory_fraction: float | None = None
    probes: list[Probe] = Field(default_factory=list)


class _Kv(Section):
    source: str | None = None  # how the figures were obtained
    bytes_per_token: int | None = None
    reserved_bytes_peak: int | None = None  # bytes set aside for KV at the stack's busiest moment
    # KV memory holding tokens, defined once for every layout (see the report's headline):
    utilization: float | None = None  # of what the allocator handed to sequences
    utilization_at_peak: float | None = None  # of what was set aside, at the busiest moment
    # The devices the cache is split over evenly (tensor / pipeline parallel); the figures are the run's.
    ranks: int | None = None


class KvBatches(_Kv):
    """Static padded batches: every row of a batch holds cache slots to the batch's longest length."""

    layout: Literal["padded-batches"] = "padded-batches"
    batch_size: int | None = None  # prompts per batch; each holds one row per output (n samples, beams)
    batches: int | None = None
    bytes_per_token_read: float | None = None
    live_bytes_at_peak: int | None = None
    reserved_bytes_total: int | None = None
    reserved_tokens_total: int | None = None
    live_tokens_total: int | None = None
    prompt_padding_tokens_total: int | None = None
    finished_row_tokens_total: int | None = None
    unreached_tokens_total: int | None = None
    # Prompt tokens whose KV the rows held: with n samples per prompt, n times each prompt (nothing shared).
    prompt_tokens_total: int | None = None
    accounted: bool | None = None  # live + every cause of the gap == reserved
    capacity: Capacity | None = None  # batch_size: max

    @property
    def sequences(self) -> int | None:
        """The batch size (the one a capacity search found): prompts per batch. A workload with fewer prompts
        fills less, and each prompt holds a row per output: the report's `Side.sequences` counts the rows."""
        if self.capacity is not None and self.capacity.max_batch:
            return self.capacity.max_batch
        return self.batch_size


class Energy(Section):
    """What the GPUs a run used drew over its timed region (a serving load: over the load), and per token.
    Where it was not measured, `error` says why and the figures are None."""

    source: str  # "NVML energy counters" | "power integrated over N samples" | "none"
    gpus: int = Field(default=0, ge=0)
    seconds: float | None = Field(default=None, ge=0)
    joules: float | None = Field(default=None, ge=0)
    per_output_token_j: float | None = Field(default=None, ge=0)
    per_token_j: float | None = Field(default=None, ge=0)  # prompt and output tokens together
    mean_power_w: float | None = Field(default=None, ge=0)
    idle_power_w: float | None = Field(default=None, ge=0)  # the same GPUs before the engine loaded
    error: str | None = None


class SharingTrace(Section):
    """Every reading of a run, as columns: seconds from the first, logical and physical blocks then. Each
    state holds until the next reading."""

    t_s: list[float]
    logical: list[int]
    physical: list[int]

    @model_validator(mode="after")
    def _same_length(self) -> SharingTrace:
        if not len(self.t_s) == len(self.logical) == len(self.physical):
            raise ValueError("a sharing trace's columns differ in length")
        return self


class SharingProbe(Section):
    """The vLLM paper's memory saved by sharing, over a run: logical KV blocks (every request's block table,
    a shared block counted once for each request holding it) against physical ones (the pool's blocks in
    use), read after every engine step and weighted by the time each state held. `error`: why there are no
    figures."""

    source: str
    readings: int = 0  # after every schedule and every update from the model's output
    busy_s: float | None = None  # time something held blocks
    logical_blocks_mean: float | None = None  # time-weighted over busy_s
    physical_blocks_mean: float | None = None
    peak_physical_blocks: float | None = None  # the busiest moment
    logical_blocks_at_peak: float | None = None
    error: str | None = None
    trace: SharingTrace | None = None  # the raw readings the figures above were summed from
    trace_note: str | None = None  # why there is no trace

    @property
    def saved(self) -> float | None:
        """1 - physical / logical over the run (the ratio of their time integrals)."""
        return _saved(self.physical_blocks_mean, self.logical_blocks_mean)

    @property
    def saved_at_peak(self) -> float | None:
        return _saved(self.peak_physical_blocks, self.logical_blocks_at_peak)


def _saved(physical: float | None, logical: float | None) -> float | None:
    return 1.0 - physical / logical if physical is not None and logical else None


class KvPool(_Kv):
    """A pool of fixed-size blocks handed to sequences as they grow (paged attention)."""

    layout: Literal["block-pool"] = "block-pool"
    block_size: int | None = None
    pool_blocks: int | None = None
    pool_tokens: int | None = None
    pool_bytes: int | None = None
    prefix_caching: bool | None = None
    engine_samples: int | None = None
    peak_usage: float | None = None  # share of the pool's blocks in use at the busiest moment
    peak_running: float | None = None
    peak_waiting: float | None = None
    preemptions: float | None = None
    block_fill: float | None = None  # share of the allocated blocks' slots holding tokens
    max_sequences_longest: int | None = None
    # Prompt tokens the run looked up in the prefix cache, and those it found there (their KV computed once
    # and held once for every sequence that shares them).
    prefix_cache_queries: float | None = None
    prefix_cache_hits: float | None = None
    # Memory saved by sharing, read in the engine after every step (the scenario's kv_sharing_probe).
    sharing: SharingProbe | None = None

    @property
    def prefix_hit_rate(self) -> float | None:
        if not self.prefix_cache_queries or self.prefix_cache_hits is None:
            return None
        return self.prefix_cache_hits / self.prefix_cache_queries

    @property
    def sequences(self) -> float | None:
        """The most sequences held at once: the engine's peak of running requests."""
        return self.peak_running


Kv = Annotated[KvBatches | KvPool, Field(discriminator="layout")]


class Roofline(Section):
    decode_bytes: int
    decode_steps: int
    bytes_counted: str
    bandwidth_gbps: float | None = None
    floor_s: float | None = None
    fraction_of_roofline: float | None = None


class Entry(Section):
    mib: float
    how: str  # read or computed, and from what


class Breakdown(Section):
    """Where a run's GPU memory went."""

    process_used: Entry | None = None
    weights: Entry | None = None
    kv_reserved: Entry | None = None
    kv_live: Entry | None = None
    activations: Entry | None = None
    runtime_overhead: Entry | None = None
    allocator_slack: Entry | None = None
    other: Entry | None = None
