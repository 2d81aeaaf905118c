"""The fake stack's one knob."""

from __future__ import annotations

from typing import ClassVar, Literal

from bench.config import ScenarioBase
from bench.stacks.fake import STACK


class FakeScenario(ScenarioBase):
    stack: Literal["fake"]
    fail: str | None = None  # the timed run raises this message

    MODES: ClassVar[tuple[str, ...]] = STACK.modes
