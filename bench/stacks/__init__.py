"""The stacks, one folder each, found by the registry without importing any engine.

Each folder under bench/stacks/ whose `__init__.py` declares `STACK = StackSpec(...)` is a stack: adding
one is adding a folder (see docs/architecture.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from bench.errors import UserError
from bench.stacks.spec import StackSpec, load


def _discover() -> dict[str, StackSpec]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            spec = getattr(importlib.import_module(f"{__name__}.{info.name}"), "STACK", None)
            if isinstance(spec, StackSpec):
                found.append(spec)
    return {s.name: s for s in sorted(found, key=lambda s: (s.rank, s.name))}


STACKS: dict[str, StackSpec] = _discover()


def stack_spec(name: str) -> StackSpec:
    try:
        return STACKS[name]
    except KeyError:
        raise UserError(f"unknown stack {name!r}; known stacks: {', '.join(sorted(STACKS))}") from None


def load_runner(name: str):
    """The runner class of a stack (imports its engine's Python package only when the runner does)."""
    return load(stack_spec(name).runner)


def load_server(name: str):
    """The stack's OpenAI-compatible server (a ServerKind); UserError when it has none."""
    spec = stack_spec(name)
    if spec.server is None:
        raise UserError(f"stack {name!r} has no server to run online; stacks with one: {', '.join(servers())}")
    return load(spec.server)


def servers() -> list[str]:
    """The stacks that can serve online."""
    return [n for n, s in STACKS.items() if s.server]


def options_models() -> dict:
    """Each stack's scenario model (its knobs), by name."""
    return {name: load(spec.options) for name, spec in STACKS.items()}


def baseline() -> StackSpec:
    """The stack the others are measured against."""
    return next(s for s in STACKS.values() if s.role == "baseline")


def default_baseline() -> str:
    """`stack:mode` of the row that ratios refer to by default: the baseline stack's first mode."""
    spec = baseline()
    return f"{spec.name}:{spec.modes[0]}"


def order(stack: str, mode: str) -> tuple[int, str, int]:
    """Display order of a (stack, mode): the registry's order, then the stack's modes' order."""
    spec = STACKS.get(stack)
    return (spec.rank, stack, spec.mode_rank(mode)) if spec else (10**6, stack, 0)


def recorded_packages() -> tuple[str, ...]:
    """The distributions whose versions every result records: every stack's, and the tool's own."""
    names = [p for spec in STACKS.values() for p in spec.packages] + ["nvidia-ml-py", "pydantic"]
    return tuple(dict.fromkeys(names))


__all__ = [
    "STACKS",
    "StackSpec",
    "baseline",
    "default_baseline",
    "load_runner",
    "options_models",
    "order",
    "recorded_packages",
    "stack_spec",
]
