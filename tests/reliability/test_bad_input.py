"""Bad input across the CLI, suite files and result files: a clear error (exit 2 unless documented), no
traceback, nothing partial left behind."""

import json
import os
import shutil
import textwrap

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.bad_input

ONE_RESULT = ROOT / "docs/results/h200-2026-12-07/results/energy-hf-042640/hf-hf-padded-b128-r0.json"

SUITE = """
name: bad
model: synthetic:tiny-llama
workloads:
  w:
    requests: 4
    prompt_len: {dist: uniform, min: 4, max: 16}
    output_len: 4
scenarios:
  - {name: a, stack: hf, mode: padded, batch_size: 2, workload: w}
"""

# (id, replacement applied to SUITE or None, extra CLI args, expected text in the error)
SUITE_CASES = [
    ("unknown-stack", ("stack: hf", "stack: tensorrt"), "allowed: fake, hf, vllm"),
    ("unknown-mode", ("mode: padded", "mode: speculative"), "allowed: sequential, padded, static-cache, paged"),
    ("unknown-preset", ("synthetic:tiny-llama", "synthetic:giant"), "known presets:"),
    ("misspelled-top-key", ("scenarios:", "scenarioz:"), "scenarioz: unknown key"),
    ("misspelled-workload-key", ("requests: 4", "requets: 4"), "workloads.w.requets: unknown key"),
    ("misspelled-length-key", ("min: 4, max: 16", "min: 4, maks: 16"), "workloads.w.prompt_len.maks: unknown key"),
    ("misspelled-scenario-key", ("batch_size: 2", "batchsize: 2"), "scenarios.0.batchsize: unknown key"),
    ("wrong-type", ("requests: 4", "requests: many"), "workloads.w.requests"),
    ("negative-length", ("output_len: 4", "output_len: -4"), "workloads.w.output_len"),
    ("zero-length", ("output_len: 4", "output_len: 0"), "greater than or equal to 1"),
    ("batch-zero", ("batch_size: 2", "batch_size: 0"), "scenarios.0.batch_size"),
    ("over-model-limit", ("max: 16}", "max: 600}"), "over the max model length 512"),
    ("max-model-len-over-model", ("batch_size: 2,", "batch_size: 2, max_model_len: 100000,"), "exceeds the model's"),
    ("knob-of-other-stack", ("batch_size: 2,", "batch_size: 2, max_num_seqs: 8,"), "do not apply to stack 'hf'"),
    ("undefined-workload", ("workload: w}", "workload: v}"), "'v' is not defined"),
    ("distribution-unknown", ("dist: uniform", "dist: zipf"), "workloads.w.prompt_len"),
    ("not-yaml", ("name: bad", "name: [bad"), "not valid YAML"),
    ("infinite-sigma", ("dist: uniform, min: 4", "dist: lognormal, median: 8, sigma: .inf, min: 4"), "finite number"),
    ("nan-timeout", ("workload: w}", "workload: w, timeout_s: .nan}"), "scenarios.0.timeout_s"),
    ("requests-exhausting-memory", ("requests: 4", "requests: 1000000000000"), "workloads.w.requests"),
    ("requests-over-the-maximum", ("requests: 4", "requests: 10000000"), "less than or equal to 1000000"),
    (
        "prompt-tokens-over-the-maximum",
        ("requests: 4", "requests: 900000\n    shared_prefix_len: 100"),
        "over the 50,000,000 a workload may hold",
    ),
    ("seed-overflowing", ("requests: 4", "requests: 4\n    seed: 1099511627776"), "workloads.w.seed"),
    ("duplicate-key", ("requests: 4", "requests: 4\n    requests: 8"), "'requests' is given twice"),
    ("name-too-long-for-a-file", ("{name: a,", "{name: " + "a" * 300 + ","), "scenarios.0.name"),
    ("hf-tp-not-dividing-heads", ("batch_size: 2,", "batch_size: 2, tensor_parallel_size: 3,"), "4 attention heads"),
    ("hf-tp-paged", ("mode: padded, batch_size: 2,", "mode: paged, tensor_parallel_size: 2,"), "modes padded and"),
]


def files_in(path):
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def clean_error(r, code, text):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert text in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout


@pytest.mark.parametrize("case", SUITE_CASES, ids=[c[0] for c in SUITE_CASES])
def test_bad_suite(case, tmp_path):
    _, (old, new), text = case
    assert old in SUITE
    suite = tmp_path / "s.yaml"
    suite.write_text(textwrap.dedent(SUITE).replace(old, new, 1))
    r = run_cli("run", "--stack", "hf", "--suite", suite, "--out", tmp_path / "out")
    clean_error(r, 2, text)
    assert not files_in(tmp_path / "out")  # no partial result left behind


def test_top_level_not_a_mapping(tmp_path):
    (tmp_path / "s.yaml").write_text("- just\n- a list\n")
    clean_error(run_cli("run", "--stack", "hf", "--suite", tmp_path / "s.yaml"), 2, "expected a mapping")


def test_suite_path_is_a_directory(tmp_path):
    clean_error(run_cli("run", "--stack", "hf", "--suite", tmp_path / "dir.yaml"), 2, "does not exist")


def test_unknown_stack_flag():
    clean_error(run_cli("run", "--stack", "trt", "--suite", "smoke"), 2, "'trt' is not one of")


def test_unknown_suite_name():
    clean_error(run_cli("run", "--stack", "hf", "--suite", "nightly"), 2, "built-in suites:")


def test_repeats_zero():
    clean_error(run_cli("run", "--stack", "hf", "--suite", "smoke", "--repeats", "0"), 2, "--repeats")


def test_sampling_interval_out_of_range():
    clean_error(
        run_cli("run", "--stack", "hf", "--suite", "smoke", "--sample-interval-ms", "1"), 2, "--sample-interval"
    )


def test_run_id_with_a_path(tmp_path):
    clean_error(
        run_cli("run", "--stack", "hf", "--suite", "smoke", "--out", tmp_path, "--run-id", "../x"),
        2,
        "plain directory name",
    )


def test_results_dir_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    clean_error(run_cli("run", "--stack", "hf", "--suite", "smoke", "--out", tmp_path / "f"), 2, "not a directory")


def test_run_id_that_holds_results(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "hf-a-r0.json").write_text("{}")
    r = run_cli("run", "--stack", "hf", "--suite", "smoke", "--out", tmp_path, "--run-id", "x")
    clean_error(r, 2, "never overwritten")
    assert (tmp_path / "x" / "hf-a-r0.json").read_text() == "{}"


def test_model_dir_without_weights(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    clean_error(run_cli("run", "--stack", "hf", "--suite", "smoke", "--model", tmp_path / "m"), 2, "no weights")


def test_model_dir_without_tokenizer(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"")
    clean_error(run_cli("run", "--stack", "hf", "--suite", "smoke", "--model", tmp_path / "m"), 2, "no tokenizer")


def test_model_that_is_neither(tmp_path):
    clean_error(run_cli("run", "--stack", "hf", "--suite", "smoke", "--model", "not a model!"), 2, "not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_suite(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(textwrap.dedent(SUITE))
    f.chmod(0)
    clean_error(run_cli("run", "--stack", "hf", "--suite", f), 2, "cannot read")


def test_collect_empty_directory(tmp_path):
    clean_error(run_cli("collect", tmp_path, "--out", tmp_path / "r"), 2, "no result files")


def test_collect_missing_directory(tmp_path):
    clean_error(run_cli("collect", tmp_path / "nope", "--out", tmp_path / "r"), 2, "does not exist")


def test_collect_newer_schema_is_a_problem_not_a_crash(tmp_path, checked):
    res = tmp_path / "res"
    res.mkdir()
    (res / "new.json").write_text(json.dumps({"schema_version": 7, "run_id": "x"}))
    checked.append("new.json")
    # nothing readable: one line, and no report of nothing
    clean_error(run_cli("collect", res, "--out", tmp_path / "r"), 2, "new.json: schema version 7")
    assert not (tmp_path / "r").exists()
    shutil.copy(ONE_RESULT, res / "ok.json")
    r = run_cli("collect", res, "--out", tmp_path / "r", "--strict")
    assert r.returncode == 1 and "newer PagedBench: upgrade" in r.stderr and "Traceback" not in r.stderr
    assert "newer PagedBench" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("baseline", ["nosuch", "hf:", "tensorrt:padded", ":padded"])
def test_collect_baseline_of_no_form_is_exit_2(baseline, tmp_path):
    r = run_cli("collect", tmp_path, "--out", tmp_path / "r", "--baseline", baseline)
    clean_error(r, 2, f"--baseline {baseline!r}: give STACK:MODE or STACK:SCENARIO")
    assert not (tmp_path / "r").exists()


def test_collect_baseline_naming_no_row_says_what_the_ratios_refer_to(tmp_path):
    shutil.copy(ONE_RESULT, tmp_path / "ok.json")
    r = run_cli("collect", tmp_path, "--out", tmp_path / "r", "--baseline", "hf:pagged")
    assert (
        r.returncode == 0
        and "--baseline hf:pagged: no such row; the ratios refer to each workload's first HF row" in r.stderr
    )
    assert "no such row" not in run_cli("collect", tmp_path, "--out", tmp_path / "r", "--baseline", "hf:padded").stderr


def test_collect_of_files_that_are_no_results_is_exit_2(tmp_path, checked):
    (tmp_path / "env.json").write_text(json.dumps({"kind": "environment", "python": "3.11"}))
    (tmp_path / "cut.json").write_text(ONE_RESULT.read_text()[:500])
    checked.append("cut.json")
    r = run_cli("collect", tmp_path, "--out", tmp_path / "r")
    clean_error(r, 2, "no file under")
    assert "and 1 more); no report written" in r.stderr and not (tmp_path / "r").exists()


def test_compare_bad_threshold(tmp_path):
    clean_error(run_cli("compare", tmp_path, tmp_path, "--max-regression", "lots"), 2, "expected a percentage")


def test_prepare_unknown_preset():
    clean_error(run_cli("prepare", "--suite", "smoke", "--model", "synthetic:nope"), 2, "known presets")


def test_device_cuda_without_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    clean_error(
        run_cli("run", "--stack", "hf", "--suite", "smoke", "--device", "cuda", "--out", tmp_path), 2, "no CUDA device"
    )
    assert not files_in(tmp_path)


def test_suite_not_utf8(tmp_path):
    (tmp_path / "s.yaml").write_bytes(b"name: caf\xe9\nmodel: x\n")
    clean_error(run_cli("run", "--stack", "hf", "--suite", tmp_path / "s.yaml"), 2, "not UTF-8 text")


@pytest.mark.parametrize("run_id", ["a\nb", "x" * 300, "-x", "tab\there"], ids=["newline", "long", "dash", "tab"])
def test_run_id_the_file_system_refuses(tmp_path, run_id):
    r = run_cli("run", "--stack", "fake", "--suite", "smoke", "--out", tmp_path / "out", "--run-id", run_id)
    clean_error(r, 2, "plain directory name")
    assert not (tmp_path / "out").exists() or not files_in(tmp_path / "out")


def test_non_finite_option(tmp_path):
    r = run_cli("run", "--stack", "fake", "--suite", "smoke", "--out", tmp_path / "out", "--sample-interval-ms", "nan")
    clean_error(r, 2, "not a finite number")


def test_collect_reports_files_it_cannot_use(tmp_path):
    """Not UTF-8, NaN figures, nesting past any real file, a named pipe: each a problem, the rest reported."""
    from bench.results import write_result
    from tests.unit.test_results import ok_result

    res = tmp_path / "res"
    write_result(ok_result(), res)
    good = (res / "hf-a-r0.json").read_text()
    (res / "latin1.json").write_bytes(good.replace('"suite": "s"', '"suite": "caf\xe9"').encode("latin-1"))
    (res / "nan.json").write_text(good.replace('"output_tokens_per_s": 4.0', '"output_tokens_per_s": NaN'))
    (res / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (res / "no-hash.json").write_text(good.replace('"hash": "h"', '"hash": null'))
    os.mkfifo(res / "pipe.json")
    r = run_cli("collect", res, "--out", tmp_path / "r", timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    report = (tmp_path / "r" / "report.md").read_text()
    for name, why in [
        ("latin1.json", "not UTF-8"),
        ("nan.json", "NaN is not a number JSON allows"),
        ("deep.json", "nested more than"),
        ("no-hash.json", "workload.hash"),
        ("pipe.json", "not a regular file"),
    ]:
        assert f"`{name}`: " in report and why in report.split(f"`{name}`: ", 1)[1].splitlines()[0], name


def test_model_cache_that_is_a_file(tmp_path):
    (tmp_path / "cache").write_text("not a directory")
    out = tmp_path / "out"
    r = run_cli(
        "run",
        "--stack",
        "hf",
        "--suite",
        "smoke",
        "--out",
        out,
        "--run-id",
        "x",
        env={"PAGEDBENCH_CACHE": str(tmp_path / "cache")},
    )
    clean_error(r, 2, "set PAGEDBENCH_CACHE to a writable directory")
    assert not (out / "x").exists(), "an empty run directory and log were left behind"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from bench.models.presets import PRESETS
    from bench.models.synthetic import ensure_synthetic

    return ensure_synthetic(PRESETS["tiny-llama"], 0, root=tmp_path_factory.mktemp("models"))


@pytest.mark.parametrize(
    "name, content, text",
    [
        ("config.json", '{"model_type": "llama", ', "config.json: not valid JSON"),
        ("config.json", "[1, 2]", "config.json is not a JSON object"),
        ("tokenizer.json", "\x00\x01garbage", "tokenizer.json: not valid JSON"),
    ],
    ids=["config-truncated", "config-a-list", "tokenizer-corrupt"],
)
def test_local_model_with_a_broken_file(tmp_path, tiny_model, name, content, text):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / name).write_text(content)
    out = tmp_path / "out"
    r = run_cli("run", "--stack", "hf", "--suite", "smoke", "--model", model, "--out", out, "--run-id", "x")
    clean_error(r, 2, text)
    assert not (out / "x").exists()


def test_suite_yaml_alias_bomb(tmp_path):
    """Nine lines of aliases standing for a billion values: refused at once, not expanded."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    (tmp_path / "s.yaml").write_text("\n".join(lines) + "\nname: bomb\nmodel: synthetic:tiny-llama\n")
    r = run_cli("run", "--stack", "fake", "--suite", tmp_path / "s.yaml", timeout=60)
    clean_error(r, 2, "once its aliases are expanded")


@pytest.mark.parametrize(
    "seed", ["99999999999999999999999", "4294967296", "9" * 5000], ids=["huge", "2^32", "5000-digits"]
)
def test_model_seed_out_of_range(tmp_path, seed):
    r = run_cli("run", "--stack", "fake", "--suite", "smoke", "--model", f"synthetic:tiny-llama@{seed}",
                "--out", tmp_path / "out")  # fmt: skip
    clean_error(r, 2, "the seed is out of range; give a seed from 0 to 4294967295")
    assert not (tmp_path / "out").exists()


K8S_CASES = [
    (["--suite", "nosuch", "--run-id", "a", "--image-prefix", "r/p"], "the Jobs run the suites built into the images"),
    (["--suite", "smoke", "--run-id", "x-", "--image-prefix", "r/p"], "--run-id 'x-': give 1 to 30 lower-case"),
    (["--suite", "smoke", "--run-id", "", "--image-prefix", "r/p"], "--run-id '': give 1 to 30"),
    (["--suite", "smoke", "--run-id", "a", "--image-prefix", ""], "--image-prefix '': give where the images"),
    (["--suite", "smoke", "--run-id", "a", "--image-prefix", "Reg/X"], "in lower case"),
    (["--suite", "/etc/hostname", "--run-id", "a", "--image-prefix", "r/p"], "built into the images"),
    (["--suite", "smoke", "--run-id", "a", "--image-prefix", "r/p", "--gpu-product", "H100 80GB"], "node label"),
    (["--suite", "smoke", "--run-id", "a", "--image-prefix", "r/p", "--variant", "x"], "invalid choice"),
]


@pytest.mark.parametrize("args, text", K8S_CASES, ids=[f"k8s-{i}" for i in range(len(K8S_CASES))])
def test_k8s_jobs_bad_argument(args, text):
    import subprocess
    import sys

    from tests.conftest import ROOT

    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "k8s_jobs.py"), *args], capture_output=True, text=True)
    clean_error(r, 2, text)
    assert r.stdout == ""  # no manifest written


def test_k8s_jobs_suite_without_gpu_stacks(tmp_path, monkeypatch):
    """A built-in suite of the fake stack only (as a suite a user adds to the image might be)."""
    import sys

    from tests.conftest import ROOT

    sys.path.insert(0, str(ROOT / "scripts"))
    import k8s_jobs

    from bench.errors import UserError
    from bench.suite import load_suite

    monkeypatch.setattr(k8s_jobs, "builtin_suites", lambda: ["fakes"])
    fake = tmp_path / "fakes.yaml"
    fake.write_text(SUITE.replace("stack: hf, mode: padded, batch_size: 2", "stack: fake"))
    monkeypatch.setattr(k8s_jobs, "load_suite", lambda name: load_suite(str(fake)))
    with pytest.raises(UserError, match="it has no scenario of a stack with an image"):
        k8s_jobs.main(["--suite", "fakes", "--run-id", "a", "--image-prefix", "r/p"])


def test_serve_on_a_port_that_already_answers(tmp_path):
    """Refused in one line, without a run directory, before any model is built."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = run_cli("serve", "--stack", "vllm", "--suite", "smoke", "--scenario", "vllm", "--rate", "1",
                    "--port", server.server_port, "--out", tmp_path / "out")  # fmt: skip
    finally:
        server.shutdown()
    clean_error(r, 2, "already answers /health: another server is running there")
    assert not (tmp_path / "out").exists()


def test_serve_into_an_unwritable_out(tmp_path):
    (tmp_path / "file").write_text("x")
    r = run_cli("serve", "--stack", "vllm", "--suite", "smoke", "--scenario", "vllm", "--rate", "1",
                "--out", tmp_path / "file" / "out")  # fmt: skip
    clean_error(r, 2, "--out")
