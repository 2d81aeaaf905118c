import textwrap

import pytest

from bench.errors import UserError
from bench.suite import builtin_suites, load_suite


def write(tmp_path, text):
    p = tmp_path / "suite.yaml"
    p.write_text(textwrap.dedent(text))
    return str(p)


BASE = """
name: t
model: synthetic:tiny-llama
workloads:
  w:
    requests: 4
    prompt_len: 8
    output_len: {dist: uniform, min: 2, max: 6}
scenarios:
  - {name: a, stack: hf, mode: padded, batch_size: 2, workload: w}
"""


def error_of(tmp_path, text) -> str:
    with pytest.raises(UserError) as e:
        load_suite(write(tmp_path, text))
    return str(e.value)


@pytest.mark.parametrize("name", sorted(builtin_suites()))
def test_builtin_suites_are_valid(name):
    suite = load_suite(name)
    assert suite.name == name
    assert {s.stack for s in suite.scenarios} >= {"hf", "vllm"}


def test_minimal_suite_loads(tmp_path):
    suite = load_suite(write(tmp_path, BASE))
    assert suite.scenarios[0].resolved_batch_size == 2
    assert suite.workloads["w"].prompt_len.value == 8


def test_unknown_key_names_its_path(tmp_path):
    msg = error_of(tmp_path, BASE.replace("batch_size: 2", "batch_sise: 2"))
    assert "scenarios.0.batch_sise: unknown key" in msg


def test_unknown_nested_key_names_its_path(tmp_path):
    msg = error_of(tmp_path, BASE.replace("min: 2, max: 6", "min: 2, max: 6, mean: 3"))
    assert "workloads.w.output_len.mean: unknown key" in msg


def test_wrong_type(tmp_path):
    msg = error_of(tmp_path, BASE.replace("requests: 4", "requests: four"))
    assert "workloads.w.requests" in msg and "integer" in msg


@pytest.mark.parametrize("bad", ["prompt_len: 0", "prompt_len: -3"])
def test_zero_or_negative_length(tmp_path, bad):
    msg = error_of(tmp_path, BASE.replace("prompt_len: 8", bad))
    assert "workloads.w.prompt_len" in msg and "greater than or equal to 1" in msg


def test_batch_below_one(tmp_path):
    msg = error_of(tmp_path, BASE.replace("batch_size: 2", "batch_size: 0"))
    assert "scenarios.0.batch_size" in msg


def test_max_below_min(tmp_path):
    msg = error_of(tmp_path, BASE.replace("min: 2, max: 6", "min: 6, max: 2"))
    assert "workloads.w.output_len" in msg and "max (2) must be >= min (6)" in msg


def test_prompt_plus_output_over_model_length(tmp_path):
    msg = error_of(tmp_path, BASE.replace("prompt_len: 8", "prompt_len: 510"))
    assert "516 tokens" in msg and "max model length 512" in msg


def test_max_model_len_over_model(tmp_path):
    msg = error_of(tmp_path, BASE.replace("batch_size: 2,", "batch_size: 2, max_model_len: 9999,"))
    assert "scenarios.0.max_model_len: 9999 exceeds the model's maximum of 512" in msg


def test_unknown_stack_lists_allowed(tmp_path):
    msg = error_of(tmp_path, BASE.replace("stack: hf", "stack: trtllm"))
    assert "unknown stack 'trtllm'; allowed: fake, hf, vllm" in msg


def test_mode_of_another_stack(tmp_path):
    msg = error_of(tmp_path, BASE.replace("mode: padded", "mode: continuous"))
    assert "allowed: sequential, padded, static-cache, paged" in msg


def test_knob_of_another_stack(tmp_path):
    msg = error_of(tmp_path, BASE.replace("batch_size: 2,", "batch_size: 2, gpu_memory_utilization: 0.5,"))
    assert "gpu_memory_utilization do not apply to stack 'hf'" in msg


def test_sequential_with_batch(tmp_path):
    msg = error_of(tmp_path, BASE.replace("mode: padded", "mode: sequential"))
    assert "batch_size must be 1" in msg


def test_undefined_workload(tmp_path):
    msg = error_of(tmp_path, BASE.replace("workload: w}", "workload: nope}"))
    assert "'nope' is not defined; workloads: w" in msg


def test_duplicate_scenarios(tmp_path):
    text = BASE + "  - {name: a, stack: vllm, workload: w}\n"
    assert "repeated: a" in error_of(tmp_path, text)


def test_prompts_and_prompt_len_are_exclusive(tmp_path):
    msg = error_of(tmp_path, BASE.replace("prompt_len: 8", "prompt_len: 8\n    prompts: [hi]"))
    assert "exactly one of 'prompts'" in msg


def test_unknown_suite_name():
    with pytest.raises(
        UserError,
        match="unknown suite 'nope'; built-in suites: capacity, default, full, long-context, multi-gpu, seed, serving, "
        "sharing, smoke",
    ):
        load_suite("nope")


def test_missing_suite_file():
    with pytest.raises(UserError, match="does not exist"):
        load_suite("missing/suite.yaml")


def test_not_yaml(tmp_path):
    assert "not valid YAML" in error_of(tmp_path, "name: [unclosed")


def test_model_override_is_validated(tmp_path):
    with pytest.raises(UserError, match="unknown preset 'huge'"):
        load_suite(write(tmp_path, BASE), model_override="synthetic:huge")


def test_memory_budget_becomes_the_stacks_fraction():
    from bench.suite import make_scenario

    hf = make_scenario(name="a", stack="hf", mode="padded", batch_size="max", workload="w", memory_budget_gib=7)
    vllm = make_scenario(name="b", stack="vllm", workload="w", memory_budget_gib=7)
    assert hf.with_budget(143771.0).memory_fraction == round(7 * 1024 / 143771, 4)
    assert vllm.with_budget(81559.0).gpu_memory_utilization == round(7 * 1024 / 81559, 4)
    assert hf.with_budget(None) is hf  # the CPU: no GPU budget
    assert vllm.with_budget(1024.0).gpu_memory_utilization == 1.0


def test_budget_and_fraction_are_exclusive(tmp_path):
    msg = error_of(
        tmp_path, BASE.replace("batch_size: 2,", "batch_size: 2, memory_budget_gib: 4, memory_fraction: 0.5,")
    )
    assert "not both" in msg


def test_every_suite_key_is_documented_in_the_suites_page():
    import re
    from pathlib import Path

    from bench.config import Lognormal, Normal, Uniform, Workload
    from bench.stacks import options_models
    from bench.suite import Suite

    page = (Path(__file__).resolve().parents[2] / "docs" / "suites.md").read_text()
    section = page.split("## Suite files", 1)[1].split("\n## ", 1)[0]
    code = " ".join(re.findall(r"`([^`]+)`", section))  # keys are documented as code
    for model in (Suite, Workload, *options_models().values(), Uniform, Normal, Lognormal):
        for key in model.model_fields:
            assert re.search(rf"\b{key}\b", code), f"{model.__name__}.{key} is not documented"


def test_an_fp8_kv_cache_reaches_the_engine_and_other_dtypes_are_refused(tmp_path):
    from bench.stacks.base import LoadedModel
    from bench.stacks.vllm.runner import VllmRunner
    from bench.suite import make_scenario

    s = make_scenario(name="a", stack="vllm", workload="w", kv_cache_dtype="fp8")
    model = LoadedModel(path=tmp_path, spec="t", dtype="bfloat16", max_model_len=64, device="cuda")
    assert VllmRunner(model, s).engine_args()["kv_cache_dtype"] == "fp8"
    assert "kv_cache_dtype" not in VllmRunner(model, make_scenario(name="b", stack="vllm", workload="w")).engine_args()
    with pytest.raises(UserError, match="kv_cache_dtype"):
        make_scenario(name="c", stack="vllm", workload="w", kv_cache_dtype="int4")


def test_the_vllm_server_is_started_with_the_engine_arguments_an_offline_run_gets(tmp_path):
    """One mapping from a scenario's knobs to vLLM's engine arguments: `vllm serve`'s flags say what
    `LLM(...)` is given, every knob the scenario sets and the switches it leaves off."""
    from bench.stacks.base import LoadedModel
    from bench.stacks.vllm.runner import VllmRunner
    from bench.stacks.vllm.serve import SERVER
    from bench.suite import make_scenario

    s = make_scenario(
        name="a", stack="vllm", workload="w", kv_cache_dtype="fp8", max_num_seqs=48, block_size=32,
        enable_prefix_caching=True, gpu_memory_utilization=0.5, tensor_parallel_size=2,
    )  # fmt: skip
    model = LoadedModel(path=tmp_path, spec="t", dtype="bfloat16", max_model_len=64, device="cuda")
    offline = VllmRunner(model, s).engine_args()
    flags = SERVER.command(tmp_path, 8000, s.engine_settings())
    for arg, value in offline.items():
        if arg in ("model", "tokenizer", "dtype", "max_model_len", "seed", "disable_log_stats"):
            continue  # the model's, resolved by each path, and the offline engine's own
        flag = "--" + arg.replace("_", "-")
        if value is True:
            assert flag in flags, arg
        elif value is False:
            assert "--no-" + flag[2:] in flags, arg
        else:
            assert flags[flags.index(flag) + 1] == str(value), arg
    assert offline["enforce_eager"] is False and "--no-enforce-eager" in flags


def test_a_server_refuses_a_knob_it_cannot_honour_and_a_split_of_one_asks_for_nothing(tmp_path):
    from bench.serving.cli import pick_scenario
    from bench.suite import load_suite

    text = (
        "name: t\nmodel: synthetic:tiny-llama\nworkloads:\n  w: {requests: 2, prompt_len: 4, output_len: 4}\n"
        "scenarios:\n  - {name: probe, stack: vllm, workload: w, kv_sharing_probe: true}\n"
        "  - {name: one, stack: hf, workload: w, tensor_parallel_size: 1}\n"
        "  - {name: two, stack: hf, workload: w, tensor_parallel_size: 2}\n"
    )
    (tmp_path / "s.yaml").write_text(text)
    suite = load_suite(str(tmp_path / "s.yaml"))
    with pytest.raises(UserError, match="vllm serve has no kv_sharing_probe"):
        pick_scenario(suite, "vllm", "probe")
    assert pick_scenario(suite, "hf", "one").name == "one"
    with pytest.raises(UserError, match="transformers serve has no tensor_parallel_size"):
        pick_scenario(suite, "hf", "two")


def test_the_hf_server_keeps_cudnn_attention_back_as_an_offline_run_does():
    """transformers serve runs in its own process: the scenario's cudnn_attention reaches it through torch's
    own switch in its environment."""
    from bench.stacks.hf.serve import SERVER
    from bench.suite import make_scenario

    off = make_scenario(name="a", stack="hf", workload="w")
    on = make_scenario(name="b", stack="hf", workload="w", cudnn_attention=True)
    assert SERVER.env(off.engine_settings()) == {"TORCH_CUDNN_SDPA_DEPRIORITIZED": "1"}
    assert SERVER.env(on.engine_settings()) == {}
