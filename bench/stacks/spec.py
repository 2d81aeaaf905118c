"""What the other layers may know of a stack, declared as data in its folder's `__init__.py`.

A stack's package holds its options (a pydantic model of its knobs), its runner and its accounting; its
`__init__.py` holds only this spec, with import paths as strings, so that reading the registry imports no
engine, no torch and no pydantic model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class StackSpec:
    name: str
    label: str  # how the report names it
    description: str
    modes: tuple[str, ...]  # the first is the default
    options: str  # "module:Class", a subclass of bench.config.ScenarioBase
    runner: str  # "module:Class", a subclass of bench.stacks.base.Runner
    # baseline: what the others are measured against; engine: a serving engine compared with it;
    # test: exercises the harness, never a measurement.
    role: Literal["baseline", "engine", "test"] = "engine"
    rank: int = 50  # display order, lowest first
    color: str = "#55a868"  # charts
    packages: tuple[str, ...] = ()  # distributions whose versions every result records
    device: bool = True  # runs on a torch device (cuda or cpu); False: no engine at all
    crosscheck: bool = False  # its runner has a plain loop (Runner.plain_run) to check the timing against
    # "module:attr" of its OpenAI-compatible server (a bench.stacks.base.ServerKind), or None.
    server: str | None = None
    # Its engine's processes exchange tensors through /dev/shm: a container needs a large one.
    shared_memory: bool = False

    def mode_rank(self, mode: str) -> int:
        return self.modes.index(mode) if mode in self.modes else len(self.modes)


def load(path: str):
    """The object an import path ("module:attr") names."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)
