"""What every scenario of one run shares: the model on disk, the device, the built workloads, the
environment and the loaded engine. `RunContext` is the public entry the CLI, the cross-check and the
scripts build runs on (with `bench.harness.run_scenario`)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from bench.config import ScenarioBase
from bench.errors import UserError
from bench.models import ModelRef, parse_model
from bench.models.reference import max_position, model_json
from bench.results.schema import ModelInfo
from bench.roofline import bandwidth_in_subprocess
from bench.stacks import load_runner, recorded_packages, stack_spec
from bench.stacks.base import LoadedModel, Runner
from bench.suite import Suite
from bench.telemetry import environment
from bench.telemetry.gpu import Gpu, gpu_list, idle_power
from bench.workload import BuiltWorkload, build_workload


@dataclass
class RunOptions:
    stack: str
    out: Path
    device: str = "auto"
    repeats: int | None = None  # None: each scenario's own `repeats`
    only: tuple[str, ...] = ()
    sample_interval_ms: float = 50.0
    busy_gpu: str = "warn"  # or "refuse"
    sampler: bool = True  # background sampling (monitor process and gauge thread)
    run_id: str | None = None


def resolve_device(requested: str, stack: str) -> str:
    if not stack_spec(stack).device:
        return "cpu"
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible to torch")
    return requested


def materialize(ref: ModelRef) -> Path:
    """A local directory for the model (synthetic: built once into the cache; hub: downloaded)."""
    if ref.source == "synthetic":
        from bench.models.synthetic import cache_root, ensure_synthetic

        try:
            return ensure_synthetic(ref.preset, ref.seed)
        except OSError as e:  # PAGEDBENCH_CACHE is a file, read-only, full
            raise UserError(
                f"model cache {cache_root()}: cannot build {ref.spec} there: {e.strerror or e}; set "
                "PAGEDBENCH_CACHE to a writable directory"
            ) from None
    if ref.source == "local":
        return ref.path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref.spec, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))
    except Exception as e:  # offline host, unknown repo, gated model without a token
        raise UserError(f"model {ref.spec!r}: cannot download from the hub: {type(e).__name__}: {e}") from None


def resolve_dtype(requested: str, config: dict, device: str) -> str:
    if requested != "auto":
        return requested
    if device == "cpu":
        return "float32"
    saved = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return saved if saved in ("float16", "bfloat16") else "bfloat16"


@dataclass(frozen=True)
class PreparedScenario:
    """A scenario as the drivers run it, worked out once: its memory budget turned into this device's share
    (`scenario`), the model as its engine loads it, and which loaded engine it can share (`engine_key`)."""

    scenario: ScenarioBase
    model: LoadedModel
    engine_key: tuple


class RunContext:
    """Model, workloads, environment and the loaded runner, shared by the scenarios of one run."""

    def __init__(self, suite: Suite, opts: RunOptions, run_dir: Path) -> None:
        self.suite, self.opts, self.run_dir = suite, opts, run_dir
        self.ref = parse_model(suite.model)
        self.device = resolve_device(opts.device, opts.stack)
        self.path = materialize(self.ref)
        self.config = model_json(self.path, "config.json")
        self.max_position = self.ref.max_position or max_position(self.config)
        if self.max_position is None:
            raise UserError("the model's config names no maximum length; set max_model_len in the scenario")
        self.gpu = Gpu()
        self.environment = environment.collect(self.gpu, recorded_packages())
        self.environment["device"] = self.device
        self.bandwidth_gbps = bandwidth_in_subprocess() if self.device == "cuda" else None
        self.environment["copy_bandwidth_gbps"] = self.bandwidth_gbps
        # Each GPU's power before any engine of this run holds it: what a run's energy is seen beside.
        gpus = gpu_list(first=self.gpu) if self.device == "cuda" else []
        self.idle_power = idle_power(gpus) if gpus else None
        self._tokenizer = None
        self.workloads: dict[str, BuiltWorkload] = {}
        self.runner: Runner | None = None
        self.runner_key = None

    def gpus_of(self, s: ScenarioBase) -> int:
        """The GPUs a scenario of this run holds: none on a CPU."""
        return s.min_gpus() if self.device == "cuda" else 0

    @property
    def device_total_mib(self) -> float | None:
        """The GPU's memory, or None when the run is not on one."""
        return (self.environment.get("gpu") or {}).get("memory_total_mib") if self.device == "cuda" else None

    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.path)
            except (OSError, ValueError, TypeError, KeyError) as e:  # a corrupt tokenizer.json, say
                raise UserError(f"model {self.path}: its tokenizer cannot be loaded: {type(e).__name__}: {e}") from None
        return self._tokenizer

    def token_pool(self) -> range | list[int]:
        if self.ref.source == "synthetic":
            return range(256)  # the byte tokens of the synthetic tokenizer
        tok = self.tokenizer()
        special = set(tok.all_special_ids)
        return [i for i in range(tok.vocab_size) if i not in special]

    def workload(self, name: str) -> BuiltWorkload:
        """Built once per run; with as many warm-up requests as any scenario using it asks for."""
        if name not in self.workloads:
            spec = self.suite.workloads[name]
            encode = (lambda text: self.tokenizer().encode(text, add_special_tokens=False)) if spec.prompts else None
            pool = self.token_pool()  # random prompts and the warm-up requests draw from it
            warm = max(s.warmup_requests for s in self.suite.scenarios if s.workload == name)
            self.workloads[name] = build_workload(name, spec, pool, encode, warmup_requests=warm)
        return self.workloads[name]

    def prepare(self, scenario: ScenarioBase) -> PreparedScenario:
        s = scenario.with_budget(self.device_total_mib)
        model = LoadedModel(
            path=self.path,
            spec=self.ref.spec,
            dtype=resolve_dtype(s.dtype, self.config, self.device),
            max_model_len=s.max_model_len or self.max_position,
            device=self.device,
        )
        return PreparedScenario(s, model, load_runner(s.stack).engine_key(model, s))

    def model_info(self, lm: LoadedModel) -> ModelInfo:
        from bench.kv import kv_bytes_per_token

        try:
            bpt = kv_bytes_per_token(self.config, lm.dtype)
        except ValueError:
            bpt = None
        marker = self.path / "pagedbench-model.json"
        params = json.loads(marker.read_text()).get("params") if marker.is_file() else None
        return ModelInfo(
            spec=self.ref.spec,
            source=self.ref.source,
            path=str(self.path),
            preset=self.ref.preset.name if self.ref.preset else None,
            seed=self.ref.seed if self.ref.preset else None,
            architecture=(self.config.get("architectures") or [None])[0],
            params=params,
            dtype=lm.dtype,
            max_model_len=lm.max_model_len,
            kv_bytes_per_token=bpt,
        )

    def check_fits(self, scenarios: list[ScenarioBase]) -> None:
        """Every request must fit its scenario's max model length, and every scenario the GPUs the run sees:
        user errors, found before any run."""
        gpus = self.gpu_count()
        for s in scenarios:
            refusal = s.placement_refusal(self.config, gpus)
            if refusal:
                raise UserError(f"scenario {s.name}: {refusal}")
            lm = self.prepare(s).model
            if lm.max_model_len > self.max_position and stack_spec(s.stack).device:
                raise UserError(
                    f"scenario {s.name}: max_model_len {lm.max_model_len} exceeds the model's {self.max_position}"
                )
            w = self.workload(s.workload)
            if w.max_total_len > lm.max_model_len:
                raise UserError(
                    f"scenario {s.name}: workload {w.name} has a request of {w.max_total_len} tokens "
                    f"(prompt + output), over max_model_len {lm.max_model_len}"
                )

    def gpu_count(self) -> int:
        """The GPUs this run may use: those torch sees on a CUDA run, none on a CPU one."""
        if self.device != "cuda":
            return 0
        import torch

        return torch.cuda.device_count()

    def engine_for(self, p: PreparedScenario, before_load=lambda: None) -> tuple[Runner, dict[str, float]]:
        """The loaded runner for `p`: the one already loaded when its engine key matches, else a new one
        (the old one closed first, `before_load` called). Returns the runner and the load timing
        ({"engine_reused": True} when nothing was loaded)."""
        timing: dict = {"engine_reused": True}
        if self.runner_key != p.engine_key:
            self.close_runner()
            before_load()
            runner = load_runner(p.scenario.stack)(p.model, p.scenario)
            timing = runner.load()
            self.runner, self.runner_key = runner, p.engine_key
            self.environment |= environment.torch_state()  # as the engine left torch (its attention backends)
        self.runner.configure(p.model, p.scenario)
        return self.runner, timing

    def close_runner(self) -> None:
        if self.runner is not None:
            with contextlib.suppress(Exception):
                self.runner.close()
        self.runner, self.runner_key = None, None
