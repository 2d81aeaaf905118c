"""Suite files: a model, named workloads and the scenarios that run them, strictly validated.

A scenario is validated by its stack's own model (a discriminated union on `stack`), so a knob of another
stack is an error naming the key. Validation is pure (no network, no environment writes). Every error
names the key path and what is allowed; the CLI turns it into a usage error (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter, ValidationError, model_validator

from bench.config import NAME, ScenarioBase, ServingPlan, Strict, Workload
from bench.errors import UserError
from bench.files import UnreadableFile, read_yaml
from bench.models import parse_model
from bench.stacks import STACKS, options_models

SUITES_DIR = Path(__file__).parent / "suites"


def _stack_of(value) -> str | None:
    return value.get("stack") if isinstance(value, dict) else getattr(value, "stack", None)


_MODELS = options_models()
Scenario = Annotated[
    Union[tuple(Annotated[model, Tag(name)] for name, model in _MODELS.items())],  # noqa: UP007
    Discriminator(_stack_of),
]
_SCENARIO = TypeAdapter(Scenario)


def make_scenario(**fields) -> ScenarioBase:
    """A scenario validated by its stack's model, as a suite file's entry would be."""
    try:
        return _SCENARIO.validate_python(fields)
    except ValidationError as e:
        raise UserError(_format_error(e, "scenario")) from None


class Suite(Strict):
    name: str = Field(pattern=NAME, max_length=100)  # it names files
    description: str = ""
    model: str
    workloads: dict[str, Workload] = Field(min_length=1)
    scenarios: list[Scenario] = Field(min_length=1)
    serving: ServingPlan | None = None  # the loads of `pagedbench serve`

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
            refusal = s.workload_refusal(self.workloads[s.workload])
            if refusal:
                raise ValueError(f"scenarios.{i} ({s.name}): {refusal}")
        return self


def engine_plan(suite: Suite) -> dict[str, list[list[ScenarioBase]]]:
    """Each stack's scenarios grouped by the engine they can share (equal engine settings), in the order
    each engine is first needed: `pagedbench run` starts one engine per group."""
    plan: dict[str, dict[tuple, list[ScenarioBase]]] = {}
    for s in suite.scenarios:
        key = tuple(sorted(s.engine_settings().items(), key=lambda kv: kv[0]))
        plan.setdefault(s.stack, {}).setdefault(key, []).append(s)
    return {stack: list(groups.values()) for stack, groups in plan.items()}


def engine_starts(suite: Suite) -> list[str]:
    """One line for each stack whose scenarios need more than one engine, naming the settings that force
    the extra starts."""
    lines = []
    for stack, groups in engine_plan(suite).items():
        if len(groups) < 2:
            continue
        first = groups[0][0].engine_settings()
        why = []
        for group in groups[1:]:
            keys = sorted(k for k, v in group[0].engine_settings().items() if first.get(k) != v)
            why.append(f"{', '.join(x.name for x in group)} ({', '.join(keys)})")
        lines.append(f"{stack}: {len(groups)} engine starts; a new one for {'; '.join(why)}")
    return lines


# --- loading -------------------------------------------------------------------------------------------


def builtin_suites() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SUITES_DIR.glob("*.yaml"))}


_DIST_TAGS = {"fixed", "uniform", "normal", "lognormal"}


def _is_key(part) -> bool:
    """Path parts that are keys or indices, not the union-member tags pydantic adds (constrained-int, a
    stack's name, ...)."""
    if isinstance(part, int):
        return True
    return part not in _DIST_TAGS and part not in STACKS and part.replace("_", "").isalnum()


def _message(e: dict) -> tuple[str, str]:
    """(key path, message) of one pydantic error, in the suite file's terms."""
    loc = ".".join(str(p) for p in e["loc"] if _is_key(p))
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    elif e["type"] == "missing":
        msg = "required key is missing"
    elif e["type"] == "union_tag_invalid":
        loc, msg = f"{loc}.stack", f"unknown stack {e['ctx']['tag']!r}; allowed: {', '.join(sorted(STACKS))}"
    elif e["type"] == "union_tag_not_found":
        loc, msg = f"{loc}.stack", "required key is missing"
    return loc.strip(".") or "(top level)", msg


def _format_error(err: ValidationError, source: str) -> str:
    by_loc: dict[str, list[str]] = {}
    for e in err.errors():
        loc, msg = _message(e)
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
        longest = w.shared_prefix_len + w.prompt_len.upper + w.output_len.upper
        if longest > limit:
            problems.append(
                f"  workloads.{s.workload} (scenario {s.name}): longest prompt + output is {longest} tokens, "
                f"over the max model length {limit}; lower prompt_len/output_len max or raise max_model_len"
            )
    if problems:
        raise UserError("invalid suite " + suite.name + ":\n" + "\n".join(problems))
