import subprocess
import sys

import pytest

from bench.errors import UserError
from bench.runners import RUNNERS, load_runner, runner_spec
from bench.runners.base import Runner


def test_unknown_stack_lists_known_sorted():
    with pytest.raises(UserError, match="known stacks: fake, hf, vllm"):
        runner_spec("tensorrt")


def test_registry_entries_import_to_runners():
    for name in RUNNERS:
        cls = load_runner(name)
        assert issubclass(cls, Runner)


def test_importing_bench_imports_no_stack():
    code = (
        "import sys, bench, bench.cli, bench.config, bench.results, bench.runners, bench.harness\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
