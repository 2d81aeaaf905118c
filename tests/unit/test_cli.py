"""The CLI with the fake runner: exit codes, messages, result files. No numbers here are measurements."""

import json
import textwrap

from bench.results import load_result
from tests.conftest import run_cli

SUITE = """
name: cli
model: synthetic:tiny-llama
workloads:
  w: {requests: 6, prompt_len: {dist: uniform, min: 4, max: 12}, output_len: 5}
scenarios:
  - {name: first, stack: fake, workload: w, fail: "injected failure"}
  - {name: second, stack: fake, workload: w}
  - {name: other, stack: hf, workload: w}
"""


def suite_file(tmp_path, text=SUITE):
    p = tmp_path / "cli.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_failed_scenario_is_recorded_and_the_next_runs(tmp_path):
    r = run_cli("run", "--stack", "fake", "--suite", suite_file(tmp_path), "--out", tmp_path / "out", "--run-id", "x")
    assert r.returncode == 1, r.stderr
    assert "1/2 scenarios ok" in r.stdout
    first = load_result(tmp_path / "out/x/fake-first-r0.json")
    second = load_result(tmp_path / "out/x/fake-second-r0.json")
    assert first.status == "failed" and first.metrics is None and "injected failure" in first.error
    assert second.status == "ok" and second.metrics.output_tokens == 30 and not second.is_measurement
    assert second.workload.hash == first.workload.hash
    assert (tmp_path / "out/x/fake.log").read_text().count("[2/2]") >= 1
    assert "Traceback" not in r.stderr


def test_repeats_write_one_file_each(tmp_path):
    r = run_cli(
        "run",
        "--stack",
        "fake",
        "--suite",
        suite_file(tmp_path),
        "--out",
        tmp_path,
        "--run-id",
        "y",
        "--scenario",
        "second",
        "--repeats",
        "3",
    )
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "y").glob("*.json")) == [f"fake-second-r{i}.json" for i in range(3)]


def test_bad_suite_is_a_usage_error(tmp_path):
    bad = suite_file(tmp_path, SUITE.replace("output_len: 5", "output_len: 0"))
    r = run_cli("run", "--stack", "fake", "--suite", bad, "--out", tmp_path / "out")
    assert r.returncode == 2
    assert "workloads.w.output_len" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()  # nothing partial left behind


def test_unknown_scenario_filter(tmp_path):
    r = run_cli(
        "run", "--stack", "fake", "--suite", suite_file(tmp_path), "--scenario", "nope", "--out", tmp_path / "o"
    )
    assert r.returncode == 2 and "choose from: first, second" in r.stderr


def test_stack_without_scenarios(tmp_path):
    r = run_cli("run", "--stack", "vllm", "--suite", suite_file(tmp_path), "--out", tmp_path / "o")
    assert r.returncode == 2 and "no scenarios for stack 'vllm'; its stacks: fake, hf" in r.stderr


def test_unknown_stack_flag():
    r = run_cli("run", "--stack", "trt", "--suite", "smoke")
    assert r.returncode == 2 and "'trt' is not one of 'hf', 'vllm', 'fake'" in r.stderr


def test_a_command_line_mistake_is_one_line_naming_the_help_to_read():
    """click prints the usage and a hint around a usage error: four lines for one mistake. Here it is one,
    exit 2, with the command whose --help tells the options; a command given nothing still shows its help."""
    from click.testing import CliRunner

    from bench.cli import main

    mistakes = {
        ("run", "--stack", "trt", "--suite", "smoke"): "Invalid value for '--stack': 'trt' is not one of",
        ("run",): "Missing option '--stack'. Choose from: hf, vllm, fake (pagedbench run --help)",
        ("run", "--gpus", "1"): "No such option '--gpus'",
        ("monitor", "--interval", "0"): "Invalid value for '--interval'",
        ("compare",): "Missing argument 'BASELINE'. (pagedbench compare --help)",
        ("nosuch",): "No such command 'nosuch'. (pagedbench --help)",
        ("--nosuch", "list"): "No such option '--nosuch'",
    }
    for args, said in mistakes.items():
        r = CliRunner().invoke(main, args, prog_name="pagedbench")
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), (args, r.output)
        assert said in lines[0] and "Usage:" not in r.output, (args, r.output)
    assert "Usage: pagedbench" in CliRunner().invoke(main, [], prog_name="pagedbench").output


def test_out_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    r = run_cli("run", "--stack", "fake", "--suite", suite_file(tmp_path), "--out", f)
    assert r.returncode == 2 and "is not a directory" in r.stderr


def test_env_records_the_settings_a_run_depends_on_and_no_secret():
    """PYTORCH_CUDA_ALLOC_CONF changes the allocator, TORCH_CUDNN_SDPA_DEPRIORITIZED SDPA's backend order:
    a result says whether they were set; a variable naming a key or token is never written."""
    env = {
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        "TORCH_CUDNN_SDPA_DEPRIORITIZED": "1",
        "VLLM_API_KEY": "do-not-record",
        "HF_TOKEN": "do-not-record",
    }
    data = json.loads(run_cli("env", "--json", env=env).stdout)
    assert data["settings"]["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    assert data["settings"]["TORCH_CUDNN_SDPA_DEPRIORITIZED"] == "1"
    assert "do-not-record" not in json.dumps(data)
    text = run_cli("env", env=env).stdout
    assert "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True" in text and "do-not-record" not in text


def test_list_and_env_json(tmp_path):
    r = run_cli("list", "--json")
    data = json.loads(r.stdout)
    assert {"seed", "smoke", "default"} <= set(data["suites"]) and "llama-1b" in data["presets"]
    text = run_cli("env", "--json").stdout
    env = json.loads(text)
    assert env["kind"] == "environment" and env["python"] and "packages" in env
    # Kept beside results, it is named for what it is; so is one written before it said its kind.
    from bench.report.gather import collect

    (tmp_path / "env.json").write_text(text)
    (tmp_path / "old-env.json").write_text(json.dumps({k: v for k, v in env.items() if k != "kind"}))
    c = collect(tmp_path)
    assert not c.problems and sorted(c.notes) == [
        ("env.json", "not a result: the environment a run would record (pagedbench env --json)"),
        ("old-env.json", "not a result: the environment a run would record (pagedbench env --json)"),
    ]


def test_monitor_without_gpu_is_a_clear_error():
    r = run_cli("monitor", "--count", "1")
    assert r.returncode in (0, 2)
    if r.returncode == 2:
        assert "no NVIDIA device" in r.stderr


def test_busy_gpu_is_warned_or_refused(monkeypatch, tmp_path):
    """Other processes on the GPU (faked through the NVML reader) are warned about or refused."""
    import bench.context as context
    import bench.harness as harness
    from bench.errors import UserError
    from bench.suite import load_suite

    suite = load_suite(str(suite_file(tmp_path)))
    real = context.environment.collect
    monkeypatch.setattr(
        context.environment,
        "collect",
        lambda gpu=None, packages=(): {**real(gpu, packages), "gpu_processes_before": [{"pid": 1, "used_mib": 2048.0}]},
    )
    said = []
    opts = harness.RunOptions(stack="fake", out=tmp_path / "o", only=("second",), run_id="w")
    summary = harness.run_suite(suite, opts, progress=said.append)
    assert summary.exit_code == 0 and any("1 other process(es) hold 2,048 MiB" in m for m in said)
    assert summary.results[0].environment.gpu_processes_before[0].used_mib == 2048.0
    opts.busy_gpu, opts.run_id = "refuse", "r"
    import pytest

    with pytest.raises(UserError, match="--busy-gpu refuse"):
        harness.run_suite(suite, opts, progress=said.append)
