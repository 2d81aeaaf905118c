"""No engine: exercises the harness, the result files and the report without hardware."""

from bench.stacks.spec import StackSpec

STACK = StackSpec(
    name="fake",
    label="fake",
    description="No engine: returns the requested token counts without generating. For testing the "
    "harness only; its results are marked as not measurements",
    modes=("echo",),
    options="bench.stacks.fake.options:FakeScenario",
    runner="bench.stacks.fake.runner:FakeRunner",
    role="test",
    rank=90,
    device=False,
)
