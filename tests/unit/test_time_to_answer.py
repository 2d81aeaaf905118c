"""Where a run's time goes, recorded and reported; engines started once for the scenarios that can share
them. The fake runner's results carry no figures: what is checked here is the bookkeeping."""

import json
import textwrap

from bench.report.gather import collect
from bench.report.tables import time_table
from bench.results import load_result, write_result
from bench.suite import engine_starts, load_suite
from tests.conftest import run_cli
from tests.unit.test_results import ok_result

SUITE = """
name: engines
model: synthetic:tiny-llama
workloads:
  w: {requests: 4, prompt_len: 6, output_len: 3}
scenarios:
  - {name: a, stack: fake, workload: w}
  - {name: b, stack: fake, workload: w, fail: "a second engine"}
  - {name: c, stack: fake, workload: w, repeats: 2}
"""


def suite_file(tmp_path):
    path = tmp_path / "engines.yaml"
    path.write_text(textwrap.dedent(SUITE))
    return path


def test_scenarios_sharing_an_engine_run_together_and_start_it_once(tmp_path):
    r = run_cli("run", "--stack", "fake", "--suite", suite_file(tmp_path), "--out", tmp_path, "--run-id", "x")
    assert r.returncode == 1, r.stderr  # b fails by design
    order = [line.split("] ")[1].split(" (")[0] for line in r.stderr.splitlines() if line.endswith("...")]
    assert order == ["fake a", "fake c", "fake c", "fake b"]  # c shares a's engine, b needs its own
    a, c0, c1, b = (load_result(tmp_path / "x" / f"fake-{n}.json") for n in ("a-r0", "c-r0", "c-r1", "b-r0"))
    assert not a.timing.engine_reused and c0.timing.engine_reused and c1.timing.engine_reused
    assert not b.timing.engine_reused
    assert a.timing.setup_s is not None and all(x.timing.setup_s is None for x in (c0, c1, b))
    assert a.timing.process_start_s > 0 and all(x.timing.process_start_s is None for x in (c0, c1, b))
    for x in (a, c0, c1):
        assert x.timing.wall_s >= x.timing.timed_s == x.metrics.elapsed_s > 0
    assert b.timing.wall_s > 0 and b.timing.timed_s is None  # it failed in its timed run


def test_the_listing_says_which_knob_forces_another_engine(tmp_path):
    assert engine_starts(load_suite(str(suite_file(tmp_path)))) == ["fake: 2 engine starts; a new one for b (fail)"]
    assert engine_starts(load_suite("default")) == []  # the default suite starts each stack's engine once
    listed = json.loads(run_cli("list", "--json").stdout)["suites"]
    assert listed["full"]["engine_starts"] == ["vllm: 2 engine starts; a new one for vllm-seqs32 (max_num_seqs)"]


def test_time_to_answer_sums_each_run_and_each_suite(tmp_path):
    timings = [
        (
            "hf",
            "h",
            {"process_start_s": 4.0, "setup_s": 5.0, "load_s": 2.0, "warmup_s": 1.0, "timed_s": 2.0, "wall_s": 6.0},
        ),
        ("hf", "h", {"engine_reused": True, "warmup_shared": True, "timed_s": 2.0, "wall_s": 2.5}),
        (
            "vllm",
            "v",
            {
                "setup_s": 1.0,
                "load_s": 30.0,
                "engine_start_s": 30.0,
                "compile_cache": "warm",
                "timed_s": 2.0,
                "wall_s": 33.0,
            },
        ),
    ]
    for i, (stack, run, timing) in enumerate(timings):
        r = ok_result(stack=stack, run_id=run, scenario=f"s{i}", timing=timing)
        write_result(r.model_copy(update={"config": r.config.model_copy(update={"stack": stack})}), tmp_path / run)
    table = time_table(collect(tmp_path))
    rows = {row[0]: row for row in table.rows}
    assert rows["s: HF (run h)"][1:] == ["2", "4.0", "5.0", "2.0 (1 start)", "1.0", "4.0", "17.5", "4.4"]
    assert rows["s: vLLM (run v)"][4:] == ["30.0 (1 start, warm)", "—", "2.0", "34.0", "17.0"]
    assert rows["s: all of it"][1:] == ["3", "4.0", "6.0", "32.0 (2 starts, warm)", "1.0", "6.0", "51.5", "8.6"]


def test_a_reused_engine_gives_back_the_last_scenario_s_cache_before_the_next_one_is_read(tmp_path, monkeypatch):
    """An HF engine kept its caching allocator's growth (70 GiB after n = 6 samples on an H100) into the next
    scenario, whose peak process memory then read the earlier one's: the runner is settled first."""
    from bench import harness
    from bench.context import RunContext, RunOptions
    from bench.stacks.fake.runner import FakeRunner

    events = []
    monkeypatch.setattr(FakeRunner, "settle", lambda self: events.append("settle"), raising=False)
    enter = harness.Sampler.__enter__
    monkeypatch.setattr(harness.Sampler, "__enter__", lambda self: (events.append("readings"), enter(self))[1])
    suite = load_suite(suite_file(tmp_path))
    ctx = RunContext(suite, RunOptions(stack="fake", out=tmp_path), tmp_path / "run")
    a, c = (next(s for s in suite.scenarios if s.name == n) for n in "ac")
    try:
        first = harness.run_scenario(ctx, a)
        second = harness.run_scenario(ctx, c)
    finally:
        ctx.close_runner()
    assert first.status == second.status == "ok" and second.timing.engine_reused
    assert events == ["readings", "settle", "readings"]  # nothing to settle before the first load


def test_the_hf_runner_settles_by_emptying_the_allocator_s_cache():
    from bench.stacks.hf.runner import HfRunner

    class Loaded:
        resets = 0

        def reset_peak(self):
            self.resets += 1

    runner = HfRunner.__new__(HfRunner)
    runner.hf = Loaded()
    runner.settle()
    assert runner.hf.resets == 1
    runner.hf = None
    runner.settle()  # closed: nothing to give back


def test_a_result_records_torch_s_attention_backends_as_its_engine_left_them(tmp_path, monkeypatch):
    """HF's runner turns cuDNN attention off as it loads (cudnn_attention): the environment read before any
    engine loaded said it was on, and the result must say what ran."""
    import torch

    from bench import harness
    from bench.context import RunContext, RunOptions
    from bench.stacks.fake.runner import FakeRunner

    def load(self):
        torch.backends.cuda.enable_cudnn_sdp(False)
        return {"load_s": 0.0}

    monkeypatch.setattr(FakeRunner, "load", load)
    suite = load_suite(suite_file(tmp_path))
    torch.backends.cuda.enable_cudnn_sdp(True)
    ctx = RunContext(suite, RunOptions(stack="fake", out=tmp_path), tmp_path / "run")
    try:
        assert ctx.environment["sdpa_backends"]["cudnn"] is True
        result = harness.run_scenario(ctx, next(s for s in suite.scenarios if s.name == "a"))
    finally:
        ctx.close_runner()
        torch.backends.cuda.enable_cudnn_sdp(True)
    assert result.status == "ok" and result.environment.sdpa_backends["cudnn"] is False
