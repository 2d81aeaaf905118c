"""The watch that tells a dead vLLM engine from a slow one must not mistake a helper process that exited
after the engine started (a compile worker, say) for the engine: a loaded engine serves many runs."""

import subprocess
import sys
import time

import pytest

from bench.stacks.vllm.runner import EngineDied, VllmRunner, engine_processes


@pytest.fixture
def engine_core():
    core = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "EngineCore"])
    yield core
    core.kill()
    core.wait()


def gone_helper() -> int:
    helper = subprocess.Popen(["true"])
    helper.wait()
    return helper.pid


def test_the_engine_core_is_found_among_the_children(engine_core):
    gone_helper()
    assert engine_processes() == {engine_core.pid}


def test_a_helper_that_exited_since_the_start_is_not_a_dead_engine(engine_core):
    runner = VllmRunner.__new__(VllmRunner)
    runner.engine_pids = {engine_core.pid, gone_helper()}  # as recorded when the engine started
    with runner._engine_watch(interval_s=0.05):
        time.sleep(0.5)  # a run: the watch must stay quiet
    assert runner.engine_pids == {engine_core.pid}


def test_an_engine_core_that_dies_during_a_run_is_reported(engine_core):
    runner = VllmRunner.__new__(VllmRunner)
    runner.engine_pids = {engine_core.pid}
    with pytest.raises(EngineDied), runner._engine_watch(interval_s=0.05):
        engine_core.kill()
        engine_core.wait()
        time.sleep(2)
