import subprocess
import sys

import pytest

from bench.errors import UserError
from bench.stacks import STACKS, load_runner, stack_spec
from bench.stacks.base import Runner


def test_unknown_stack_lists_known_sorted():
    with pytest.raises(UserError, match="known stacks: fake, hf, vllm"):
        stack_spec("tensorrt")


def test_registry_entries_import_to_runners():
    for name in STACKS:
        cls = load_runner(name)
        assert issubclass(cls, Runner)


def test_importing_bench_imports_no_stack():
    code = (
        "import sys, bench, bench.cli, bench.config, bench.suite, bench.results, bench.stacks, bench.harness\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
