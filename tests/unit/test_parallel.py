"""Tensor and pipeline parallel knobs: refused, with one clear line and before any engine loads, where the
run's GPUs or the model cannot take them."""

import textwrap

from bench.suite import make_scenario
from tests.conftest import run_cli

LLAMA = {"num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 16}


def vllm(**knobs):
    return make_scenario(name="v", stack="vllm", workload="w", **knobs)


def test_the_gpus_and_the_model_bound_the_split():
    assert vllm().placement_refusal(LLAMA, gpus=0) is None  # one GPU (or the CPU): nothing to check
    if len(__import__("os").sched_getaffinity(0)) < 64:  # a CPU run: one core per rank at least
        assert "needs 64 cores; this host has" in vllm(tensor_parallel_size=64).placement_refusal(LLAMA, gpus=0)
    assert vllm(tensor_parallel_size=2).placement_refusal(LLAMA, gpus=2) is None
    assert vllm(tensor_parallel_size=2, pipeline_parallel_size=2).placement_refusal(LLAMA, gpus=4) is None
    assert "needs 4 GPUs; this run sees 2" in vllm(tensor_parallel_size=4).placement_refusal(LLAMA, gpus=2)
    assert "needs 4 GPUs" in vllm(tensor_parallel_size=2, pipeline_parallel_size=2).placement_refusal(LLAMA, 3)
    assert "does not divide the model's 32 attention heads" in vllm(tensor_parallel_size=3).placement_refusal(
        LLAMA, gpus=4
    )
    assert "exceeds the model's 16 layers" in vllm(pipeline_parallel_size=32).placement_refusal(LLAMA, gpus=64)
    # On a Ray cluster the GPUs may be on other hosts: only the model's bounds are checked here.
    ray = vllm(tensor_parallel_size=8, pipeline_parallel_size=2, distributed_executor_backend="ray")
    assert ray.placement_refusal(LLAMA, gpus=1) is None
    assert "attention heads" in vllm(tensor_parallel_size=3, distributed_executor_backend="ray").placement_refusal(
        LLAMA, gpus=0
    )


def test_tensor_parallel_engines_are_apart_and_the_knob_reaches_the_engine():
    from bench.stacks.vllm.runner import VllmRunner

    assert vllm(tensor_parallel_size=2).engine_settings() != vllm().engine_settings()
    runner = VllmRunner.__new__(VllmRunner)
    runner.scenario = vllm(tensor_parallel_size=2, pipeline_parallel_size=1, distributed_executor_backend="mp")
    runner.model = type("M", (), {"path": "m", "dtype": "float16", "max_model_len": 64})()
    args = runner.engine_args()
    assert args["tensor_parallel_size"] == 2 and args["pipeline_parallel_size"] == 1
    assert args["distributed_executor_backend"] == "mp"


def test_a_split_the_run_cannot_place_exits_2_before_loading(tmp_path):
    import os

    import pytest

    cores = len(os.sched_getaffinity(0))
    if 2 * cores > 64:
        pytest.skip(f"{cores} cores: every split the knob allows fits on the CPU")
    suite = tmp_path / "tp.yaml"
    suite.write_text(
        textwrap.dedent(f"""
        name: tp
        model: synthetic:tiny-llama
        workloads: {{w: {{requests: 2, prompt_len: 4, output_len: 2}}}}
        scenarios: [{{name: v-tp, stack: vllm, workload: w, tensor_parallel_size: {2 * cores}}}]
    """)
    )
    r = run_cli("run", "--stack", "vllm", "--suite", suite, "--device", "cpu", "--out", tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    needs = f"scenario v-tp: tensor_parallel_size {2 * cores} x pipeline_parallel_size 1 needs {2 * cores} cores"
    assert f"{needs}; this host has {cores}" in r.stderr  # a CPU run: one core per rank at least
    assert not list((tmp_path / "out").rglob("*.json"))  # nothing partial left behind


def hf(**knobs):
    return make_scenario(name="h", stack="hf", workload="w", **({"mode": "padded", "batch_size": 2} | knobs))


def test_hf_layer_placement_needs_several_gpus_and_its_own_engine():
    assert "device_map auto places the layers over several GPUs; this run sees 1" in hf(
        device_map="auto"
    ).placement_refusal(LLAMA, gpus=1)
    assert hf(device_map="auto").placement_refusal(LLAMA, gpus=2) is None
    assert hf(device_map="auto").engine_settings() != hf().engine_settings()


def test_hf_layer_placement_loads_through_accelerate(tmp_path):
    import pytest

    pytest.importorskip("accelerate")
    from bench.context import materialize
    from bench.models import parse_model
    from bench.stacks.hf import generation

    path = materialize(parse_model("synthetic:tiny-llama"))
    loaded = generation.load(path, "float32", "cpu", device_map="auto")  # on a CPU host: all on the CPU
    assert loaded.device.type == "cpu" and loaded.spread_over == ()


def test_hf_tensor_parallel_is_bound_by_the_gpus_the_heads_and_the_models_plan(monkeypatch):
    from bench.stacks.hf import options

    llama = LLAMA | {"model_type": "llama"}
    assert hf(tensor_parallel_size=2).placement_refusal(llama, gpus=2) is None
    assert hf(tensor_parallel_size=2).placement_refusal(llama, gpus=0) is None  # a CPU run: the ranks are processes
    assert "needs 4 GPUs; this run sees 2" in hf(tensor_parallel_size=4).placement_refusal(llama, gpus=2)
    # 16 divides the 32 attention heads, not the 8 KV heads
    assert "does not divide the model's 8 KV heads" in hf(tensor_parallel_size=16).placement_refusal(llama, gpus=16)
    gpt2 = {"n_head": 12, "model_type": "gpt2"}
    assert "no tensor parallel plan for 'gpt2'" in hf(tensor_parallel_size=2).placement_refusal(gpt2, gpus=2)
    assert hf(tensor_parallel_size=2).engine_settings() != hf().engine_settings()
    monkeypatch.setattr(options, "_cuda_visible", lambda: True)  # a CPU run on a host with GPUs
    assert "this CPU run cannot split the model" in hf(tensor_parallel_size=2).placement_refusal(llama, gpus=0)


def test_hf_tensor_parallel_applies_where_every_rank_makes_the_same_calls():
    import pytest

    from bench.errors import UserError

    for knobs, text in [
        ({"mode": "paged", "batch_size": None}, "applies to modes padded and sequential"),
        ({"mode": "static-cache"}, "applies to modes padded and sequential"),
        ({"device_map": "auto"}, "give one"),
        ({"batch_size": "max"}, "needs a fixed batch_size"),
    ]:
        with pytest.raises(UserError, match=text):
            hf(tensor_parallel_size=2, **knobs)
    assert hf(tensor_parallel_size=2, mode="sequential", batch_size=None).resolved_mode == "sequential"


def test_hf_leaves_cudnn_attention_out_unless_asked_and_a_change_needs_its_own_engine(tmp_path, monkeypatch):
    """torch's cuDNN attention builds a plan for every new shape (every decode step of a padded batch):
    off by default, an engine setting (process-wide in torch), and put back on when the engine closes."""
    import torch

    from bench.stacks.base import LoadedModel
    from bench.stacks.hf import generation
    from bench.stacks.hf.runner import HfRunner
    from bench.suite import make_scenario

    calls = []
    monkeypatch.setattr(torch.backends.cuda, "enable_cudnn_sdp", calls.append)
    monkeypatch.setattr(generation, "load", lambda *a, **k: None)
    model = LoadedModel(path=tmp_path, spec="t", dtype="bfloat16", max_model_len=64, device="cuda")
    off = make_scenario(name="a", stack="hf", mode="padded", batch_size=2, workload="w")
    on = make_scenario(name="b", stack="hf", mode="padded", batch_size=2, workload="w", cudnn_attention=True)
    assert off.cudnn_attention is False
    assert HfRunner.engine_key(model, off) != HfRunner.engine_key(model, on)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    for scenario in (off, on):
        runner = HfRunner(model, scenario)
        runner.load()
        runner.hf = None
        runner.close()
    assert calls == [False, True, True, True]
    HfRunner(LoadedModel(path=tmp_path, spec="t", dtype="float32", max_model_len=64, device="cpu"), off).load()
    assert calls == [False, True, True, True]  # a CPU run leaves torch's GPU settings alone
