"""The parts of a suite that know no stack: lengths, workloads and what every scenario has.

Validation is pure (no network, no environment writes). Each stack's scenario model subclasses
`ScenarioBase` in the stack's folder; bench.suite puts them together into the suite file's model.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Upper bounds, far above any real benchmark, so that a typo cannot exhaust memory before a check runs.
MAX_TOKENS = 10_000_000  # one sequence's prompt or output, or a model's length
MAX_REQUESTS = 1_000_000
# The prompt tokens a workload holds (requests x their longest prompt): built in memory before a run, a
# second or so per million; a workload over LARGE_WORKLOAD_TOKENS says so while it is built.
MAX_WORKLOAD_TOKENS = 50_000_000
LARGE_WORKLOAD_TOKENS = 2_000_000


class Strict(BaseModel):
    # Every number a user gives is finite (NaN passes every comparison, so no range would catch it).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- lengths -------------------------------------------------------------------------------------------


class Fixed(Strict):
    dist: Literal["fixed"] = "fixed"
    value: int = Field(ge=1, le=MAX_TOKENS)

    @property
    def upper(self) -> int:
        return self.value


class _Clipped(Strict):
    min: int = Field(ge=1, le=MAX_TOKENS)
    max: int = Field(ge=1, le=MAX_TOKENS)

    @model_validator(mode="after")
    def _ordered(self):
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self

    @property
    def upper(self) -> int:
        return self.max


class Uniform(_Clipped):
    dist: Literal["uniform"]


class Normal(_Clipped):
    dist: Literal["normal"]
    mean: float = Field(gt=0, le=MAX_TOKENS)
    std: float = Field(gt=0, le=MAX_TOKENS)


class Lognormal(_Clipped):
    dist: Literal["lognormal"]
    median: float = Field(gt=0, le=MAX_TOKENS)
    sigma: float = Field(gt=0, le=20)


Length = Annotated[Fixed | Uniform | Normal | Lognormal, Field(discriminator="dist")]


def _length(value):
    """A bare positive integer is shorthand for a fixed length."""
    if isinstance(value, bool):
        raise ValueError("expected a positive integer or a mapping with 'dist'")
    if isinstance(value, int):
        return {"dist": "fixed", "value": value}
    return value


# --- workloads -----------------------------------------------------------------------------------------


class Workload(Strict):
    """Either text `prompts` (cycled to `requests`) or synthetic `prompt_len`; always `output_len`."""

    prompts: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    prompt_len: Length | None = None
    # Every request's prompt starts with the same this many tokens (then its own prompt, as without it):
    # what a prefix cache can store once for all of them.
    shared_prefix_len: int = Field(default=0, ge=0, le=MAX_TOKENS)
    # n: outputs per prompt, each output_len long (parallel sampling: the prompt's KV can be shared).
    samples_per_prompt: int = Field(default=1, ge=1, le=64)
    # Beam search of this width: each prompt's beams (the best `beam_width` at the end) all come back, each
    # output_len long, so the beams that share a prefix can share its KV.
    beam_width: int = Field(default=1, ge=1, le=16)
    output_len: Length
    requests: int | None = Field(default=None, ge=1, le=MAX_REQUESTS)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)  # numpy seeds are 32-bit
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)

    _coerce_prompt = field_validator("prompt_len", mode="before")(lambda cls, v: None if v is None else _length(v))
    _coerce_output = field_validator("output_len", mode="before")(lambda cls, v: _length(v))

    @model_validator(mode="after")
    def _one_prompt_source(self):
        if (self.prompts is None) == (self.prompt_len is None):
            raise ValueError("give exactly one of 'prompts' (text) or 'prompt_len' (synthetic token ids)")
        if self.prompt_len is not None and self.requests is None:
            raise ValueError("'requests' is required with 'prompt_len'")
        if self.prompt_tokens_upper > MAX_WORKLOAD_TOKENS:
            raise ValueError(
                f"{self.num_requests:,} requests of up to {self.prompt_tokens_upper // self.num_requests:,} prompt "
                f"tokens hold up to {self.prompt_tokens_upper:,} tokens, over the {MAX_WORKLOAD_TOKENS:,} a workload "
                "may hold; send fewer or shorter requests"
            )
        if self.samples_per_prompt > 1 and self.temperature == 0:
            raise ValueError("samples_per_prompt > 1 needs temperature > 0 (greedy samples would all be the same)")
        if self.beam_width > 1:
            if self.samples_per_prompt > 1 or self.temperature > 0:
                raise ValueError(
                    "beam_width > 1 is deterministic search: it needs samples_per_prompt 1 and temperature 0"
                )
            if self.output_len.dist != "fixed":
                # vLLM's beam search takes one max_tokens for all prompts of a call.
                raise ValueError("beam_width > 1 needs a fixed output_len (one beam-search length for every request)")
        return self

    @property
    def outputs_per_prompt(self) -> int:
        """Outputs each request returns: its n samples, or its beams."""
        return self.samples_per_prompt * self.beam_width

    @property
    def num_requests(self) -> int:
        return self.requests if self.requests is not None else len(self.prompts or [])

    @property
    def prompt_tokens_upper(self) -> int:
        """The most prompt tokens the workload can hold (text prompts: their characters bound their tokens)."""
        if self.prompt_len is not None:
            longest = self.prompt_len.upper
        else:
            longest = max(len(p.encode()) for p in self.prompts or [""])
        return self.num_requests * (longest + self.shared_prefix_len)


# --- online serving ------------------------------------------------------------------------------------


class ServingPlan(Strict):
    """The loads `pagedbench serve` sends a suite's servers when the command line gives none: each rate on
    `profile`, then each concurrency; `slos` (per-request limits in ms) for goodput."""

    profile: Literal["poisson", "constant", "gamma"] = "poisson"
    rates: list[Annotated[float, Field(gt=0, le=1e6)]] = Field(default_factory=list)
    concurrency: list[Annotated[int, Field(ge=1, le=100000)]] = Field(default_factory=list)
    burstiness: float = Field(default=1.0, gt=0, le=1e3)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    slos: dict[Literal["ttft_ms_p99", "tpot_ms_p99", "e2e_ms_p99"], Annotated[float, Field(gt=0, le=1e9)]] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _some_load(self):
        if not self.rates and not self.concurrency:
            raise ValueError("give at least one of 'rates' (requests per second) or 'concurrency'")
        return self


# --- scenarios -----------------------------------------------------------------------------------------

Dtype = Literal["auto", "float32", "float16", "bfloat16"]
NAME = r"^[a-z0-9][a-z0-9_.-]*$"


class ScenarioBase(Strict):
    """What every stack's scenario has. Each stack subclasses it in its folder with its own knobs, its
    modes and the hooks other layers need; a suite holds one of them per scenario, chosen by `stack`."""

    name: str = Field(pattern=NAME, max_length=100)  # it names files
    stack: str
    mode: str | None = None
    workload: str
    dtype: Dtype = "auto"
    max_model_len: int | None = Field(default=None, ge=2, le=MAX_TOKENS)
    warmup_requests: int = Field(default=2, ge=0, le=MAX_REQUESTS)
    timeout_s: float = Field(default=1800.0, gt=0, le=7 * 86400)
    repeats: int = Field(default=1, ge=1, le=1000)  # timed runs of the scenario (`--repeats` overrides)
    # The same budget on any card: GiB, turned into the stack's own fraction (BUDGET_KNOB) of the GPU the
    # run finds. Ignored on the CPU.
    memory_budget_gib: float | None = Field(default=None, gt=0.0, le=1e6)

    MODES: ClassVar[tuple[str, ...]] = ()  # the first is the default
    BUDGET_KNOB: ClassVar[str | None] = None  # the knob memory_budget_gib sets; None: no budget applies

    @classmethod
    def knobs(cls) -> list[str]:
        """This stack's own keys."""
        return sorted(set(cls.model_fields) - set(ScenarioBase.model_fields))

    @model_validator(mode="before")
    @classmethod
    def _foreign_knobs(cls, data):
        """A knob of another stack is named as such (a key no stack knows stays an unknown key)."""
        if not isinstance(data, dict) or cls is ScenarioBase:
            return data
        others = set().union(*(set(sub.knobs()) for sub in ScenarioBase.__subclasses__() if sub is not cls))
        foreign = sorted(k for k in data if k in others and k not in cls.model_fields)
        if foreign:
            own = ", ".join(cls.knobs()) or "(none)"
            raise ValueError(f"{', '.join(foreign)} do not apply to stack {data.get('stack')!r}; its knobs: {own}")
        return data

    @model_validator(mode="after")
    def _mode_and_budget(self):
        if self.mode is not None and self.mode not in self.MODES:
            raise ValueError(
                f"mode {self.mode!r} is not a mode of stack {self.stack!r}; allowed: {', '.join(self.MODES)}"
            )
        if self.memory_budget_gib is not None:
            if self.BUDGET_KNOB is None:
                raise ValueError(f"memory_budget_gib does not apply to stack {self.stack!r}")
            if getattr(self, self.BUDGET_KNOB) is not None:
                raise ValueError(f"give memory_budget_gib or {self.BUDGET_KNOB}, not both")
        return self

    def with_budget(self, device_total_mib: float | None) -> ScenarioBase:
        """memory_budget_gib as the stack's fraction of this device (unchanged without a budget or a GPU)."""
        if self.memory_budget_gib is None or not device_total_mib or self.BUDGET_KNOB is None:
            return self
        fraction = min(1.0, self.memory_budget_gib * 1024 / device_total_mib)
        return self.model_copy(update={self.BUDGET_KNOB: round(fraction, 4)})

    @property
    def resolved_mode(self) -> str:
        return self.mode or self.MODES[0]

    def options(self) -> dict[str, Any]:
        """This stack's knobs as given (a result records them)."""
        return {k: getattr(self, k) for k in self.knobs()}

    def roofline_layout(
        self, requests, *, weights: int, bpt: int, cache_len: int, peak_running: float | None, samples: int = 1
    ):
        """(decode bytes, decode steps, what was counted) that the stack's attention reads for `requests`
        (each request once per sample: `samples` in a row), for the roofline; None where the stack says
        nothing of it."""
        return None

    # Keys that shape a run of the scenario but not the engine it runs on.
    PER_RUN: ClassVar[frozenset[str]] = frozenset(
        {"name", "mode", "workload", "warmup_requests", "timeout_s", "repeats"}
    )

    def engine_settings(self) -> dict[str, Any]:
        """What shapes the engine: scenarios of one stack whose settings are equal can share a loaded one."""
        return {k: v for k, v in self.model_dump().items() if k not in self.PER_RUN}

    def workload_refusal(self, workload: Workload) -> str | None:
        """Why this scenario cannot run `workload`, or None when it can."""
        return None

    def crosscheck_refusal(self) -> str | None:
        """Why the cross-check cannot time this scenario against a plain loop, or None when it can."""
        return None

    @property
    def ranks(self) -> int:
        """The processes the engine splits the model over, one per device, all computing each step."""
        return 1

    def min_gpus(self) -> int:
        """The fewest GPUs the scenario runs on."""
        return self.ranks

    def placement_refusal(self, model_config: dict, gpus: int) -> str | None:
        """Why the scenario cannot be placed on the `gpus` GPUs the run sees (0 on a CPU) with this model
        (its config.json), or None when it can: checked before any engine loads."""
        return None

    def max_running(self) -> int:
        """The most sequences the stack runs at once when nothing better is known."""
        return 256
