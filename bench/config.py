"""Suite files: a model, named workloads and the scenarios that run them, strictly validated.

Validation is pure (no network, no environment writes). Every error names the key path and what is
allowed; the CLI turns it into a usage error (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.errors import UserError
from bench.files import UnreadableFile, read_yaml
from bench.models import parse_model
from bench.runners.registry import RUNNERS

SUITES_DIR = Path(__file__).parent / "suites"
# Upper bounds, far above any real benchmark, so that a typo cannot exhaust memory before a check runs.
MAX_TOKENS = 10_000_000  # one sequence's prompt or output, or a model's length
MAX_REQUESTS = 10_000_000


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
        return self

    @property
    def num_requests(self) -> int:
        return self.requests if self.requests is not None else len(self.prompts or [])


# --- scenarios -----------------------------------------------------------------------------------------

Dtype = Literal["auto", "float32", "float16", "bfloat16"]
_NAME = r"^[a-z0-9][a-z0-9_.-]*$"


class Scenario(Strict):
    name: str = Field(pattern=_NAME, max_length=100)  # it names files
    stack: str
    mode: str | None = None
    workload: str
    dtype: Dtype = "auto"
    max_model_len: int | None = Field(default=None, ge=2, le=MAX_TOKENS)
    warmup_requests: int = Field(default=2, ge=0, le=MAX_REQUESTS)
    timeout_s: float = Field(default=1800.0, gt=0, le=7 * 86400)
    # hf
    # "max": search the largest batch that completes within memory_fraction of the GPU (capacity).
    batch_size: Annotated[int, Field(ge=1, le=MAX_REQUESTS)] | Literal["max"] | None = None
    memory_fraction: float | None = Field(default=None, gt=0.0, le=1.0)
    # The same budget on any card: GiB, turned into memory_fraction (hf) or gpu_memory_utilization (vllm)
    # of the GPU the run finds. Ignored on the CPU.
    memory_budget_gib: float | None = Field(default=None, gt=0.0, le=1e6)
    # vllm
    gpu_memory_utilization: float | None = Field(default=None, gt=0.0, le=1.0)
    max_num_seqs: int | None = Field(default=None, ge=1, le=MAX_REQUESTS)
    enforce_eager: bool | None = None
    enable_prefix_caching: bool | None = None
    # CPU backend: VLLM_CPU_KVCACHE_SPACE (GiB)
    kv_cache_space_gib: int | None = Field(default=None, ge=1, le=1_000_000)
    block_size: int | None = Field(default=None, ge=1, le=4096)
    # fake (harness tests)
    fail: str | None = None

    @field_validator("stack")
    @classmethod
    def _known_stack(cls, v: str) -> str:
        if v not in RUNNERS:
            raise ValueError(f"unknown stack {v!r}; allowed: {', '.join(sorted(RUNNERS))}")
        return v

    @model_validator(mode="after")
    def _mode_and_knobs(self):
        spec = RUNNERS[self.stack]
        if self.mode is not None and self.mode not in spec.modes:
            raise ValueError(
                f"mode {self.mode!r} is not a mode of stack {self.stack!r}; allowed: {', '.join(spec.modes)}"
            )
        all_knobs = set().union(*(s.knobs for s in RUNNERS.values()))
        foreign = sorted(k for k in all_knobs - spec.knobs if getattr(self, k) is not None)
        if foreign:
            raise ValueError(
                f"{', '.join(foreign)} do not apply to stack {self.stack!r}; its knobs: {', '.join(sorted(spec.knobs))}"
            )
        if self.resolved_mode == "sequential" and self.batch_size not in (None, 1):
            raise ValueError("mode 'sequential' runs one request at a time: batch_size must be 1 or left out")
        if self.memory_budget_gib is not None and (self.memory_fraction or self.gpu_memory_utilization):
            raise ValueError("give memory_budget_gib or a fraction (memory_fraction, gpu_memory_utilization), not both")
        if self.batch_size == "max" and self.resolved_mode not in ("padded", "static-cache"):
            raise ValueError("batch_size 'max' applies to modes padded and static-cache")
        return self

    def with_budget(self, device_total_mib: float | None) -> Scenario:
        """memory_budget_gib as the stack's fraction of this device (unchanged without a budget or a GPU)."""
        if self.memory_budget_gib is None or not device_total_mib:
            return self
        fraction = min(1.0, self.memory_budget_gib * 1024 / device_total_mib)
        key = "gpu_memory_utilization" if self.stack == "vllm" else "memory_fraction"
        return self.model_copy(update={key: round(fraction, 4)})

    @property
    def resolved_mode(self) -> str:
        return self.mode or RUNNERS[self.stack].modes[0]

    @property
    def resolved_batch_size(self) -> int | None:
        """The batch size; None when it is to be searched ("max")."""
        return None if self.batch_size == "max" else (self.batch_size or 1)


class Suite(Strict):
    name: str = Field(pattern=_NAME, max_length=100)  # it names files
    description: str = ""
    model: str
    workloads: dict[str, Workload] = Field(min_length=1)
    scenarios: list[Scenario] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self):
        names = [s.name for s in self.scenarios]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"scenario names must be unique; repeated: {', '.join(dupes)}")
        for i, s in enumerate(self.scenarios):
            if s.workload not in self.workloads:
                known = ", ".join(sorted(self.workloads))
                raise ValueError(f"scenarios.{i}.workload: {s.workload!r} is not defined; workloads: {known}")
        return self


# --- loading -------------------------------------------------------------------------------------------


def builtin_suites() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SUITES_DIR.glob("*.yaml"))}


_DIST_TAGS = {"fixed", "uniform", "normal", "lognormal"}


def _is_key(part) -> bool:
    """Path parts that are keys or indices, not the union-member tags pydantic adds (constrained-int, ...)."""
    return isinstance(part, int) or (part not in _DIST_TAGS and part.replace("_", "").isalnum())


def _format_error(err: ValidationError, source: str) -> str:
    by_loc: dict[str, list[str]] = {}
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if _is_key(p)) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        if msg not in by_loc.setdefault(loc, []):
            by_loc[loc].append(msg)
    lines = [f"invalid suite {source}:"] + [f"  {loc}: {'; or '.join(msgs)}" for loc, msgs in by_loc.items()]
    return "\n".join(lines)


def load_suite(name_or_path: str, model_override: str | None = None) -> Suite:
    """Load a built-in suite by name or a YAML file by path; errors are UserError with key paths."""
    path = Path(name_or_path)
    if not path.is_file():
        suites = builtin_suites()
        if name_or_path not in suites:
            if path.suffix in {".yaml", ".yml"} or "/" in name_or_path:
                raise UserError(f"suite file {name_or_path!r} does not exist")
            raise UserError(
                f"unknown suite {name_or_path!r}; built-in suites: {', '.join(suites)} (or a path to a YAML file)"
            )
        path = suites[name_or_path]
    try:
        data = read_yaml(path)
    except UnreadableFile as e:
        raise UserError(f"suite {path}: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"suite {path}: expected a mapping at the top level")
    if model_override:
        data["model"] = model_override
    try:
        suite = Suite.model_validate(data)
    except ValidationError as e:
        raise UserError(_format_error(e, str(path))) from None
    check_lengths(suite)
    return suite


def check_lengths(suite: Suite) -> None:
    """Prompt + output must fit the max model length, wherever the lengths are known before tokenizing."""
    model = parse_model(suite.model)
    problems = []
    for i, s in enumerate(suite.scenarios):
        limit = s.max_model_len or model.max_position
        if s.max_model_len and model.max_position and s.max_model_len > model.max_position:
            problems.append(
                f"  scenarios.{i}.max_model_len: {s.max_model_len} exceeds the model's maximum of {model.max_position}"
            )
            continue
        w = suite.workloads[s.workload]
        if limit is None or w.prompt_len is None:
            continue
        longest = w.prompt_len.upper + w.output_len.upper
        if longest > limit:
            problems.append(
                f"  workloads.{s.workload} (scenario {s.name}): longest prompt + output is {longest} tokens, "
                f"over the max model length {limit}; lower prompt_len/output_len max or raise max_model_len"
            )
    if problems:
        raise UserError("invalid suite " + suite.name + ":\n" + "\n".join(problems))
