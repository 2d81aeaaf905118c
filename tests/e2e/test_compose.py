"""`make bench` for real: the CPU variant's three images built and run by compose on a real Docker engine,
driven by `make` as a non-root user. The GPU path's own parts are checked where no GPU is needed: preflight
against the real engine, the HF image's run-time compiler, the compile-cache volume."""

from __future__ import annotations

import csv
import json
import re
import textwrap

import pytest

from bench.results import Result, scan_results
from tests.e2e.conftest import DEBIAN_BASE, docker

pytestmark = pytest.mark.e2e


def results_of(run_dir) -> dict[str, Result]:
    found = {}
    for path, r in scan_results(run_dir):
        assert isinstance(r, Result), f"{path}: {r}"
        found[r.scenario] = r
    return found


@pytest.fixture(scope="module")
def full(pipeline):
    """`make bench` with nothing but the knobs of this host: no GPU, so the CPU variant on the smoke suite."""
    out = pipeline.make("bench", "RUN_ID=e2e-full")
    return out, pipeline.results / "e2e-full"


def test_bench_without_gpu_runs_the_cpu_variant_and_reports_both_stacks(pipeline, full):
    out, run = full
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    said = out.stdout + out.stderr
    assert "no NVIDIA GPU found" in said and "CPU variant on suite smoke" in said
    results = results_of(run)
    stacks = {r.stack for r in results.values()}
    assert stacks == {"hf", "vllm"}, results
    assert all(r.status == "ok" and r.check.passed for r in results.values()), {k: r.error for k, r in results.items()}
    assert results["vllm"].environment.image.startswith("pagedbench-vllm:")
    assert results["vllm"].environment.lock == "vllm-cpu.txt"
    # Owned by the user who ran make, not by root or the images' own uid.
    uid = pipeline.user.pw_uid if pipeline.user else None
    for path in [run, *run.rglob("*")]:
        assert uid is None or path.stat().st_uid == uid, path
    report = run / "report"
    md = (report / "report.md").read_text()
    html = (report / "report.html").read_text()
    rows = list(csv.DictReader((report / "results.csv").open()))
    for text in (md, html):
        assert "hf" in text and "vllm" in text and "hf-static-b4" in text
    assert {row["stack"] for row in rows} == {"hf", "vllm"}


def test_the_model_prepare_built_is_readable_by_any_uid(pipeline, full):
    """prepare and the stacks share the models volume; nothing in it may be private to the builder."""
    out = pipeline.compose(
        "run", "--rm", "--no-deps", "--user", "4242:4242", "--entrypoint", "find", "hf", "/models", "!", "-perm", "-o+r"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"unreadable for another uid: {out.stdout[:500]}"


def test_one_service_alone_then_its_report(pipeline):
    out = pipeline.make("bench-hf", "RUN_ID=e2e-hf")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = pipeline.results / "e2e-hf"
    assert {r.stack for r in results_of(run).values()} == {"hf"}
    (run / "report" / "report.md").unlink()
    again = pipeline.make("report", "RUN_ID=e2e-hf")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "hf-padded-b4" in (run / "report" / "report.md").read_text()


def test_a_failed_stack_is_reported_and_fails_the_bench(pipeline):
    """The vLLM scenario asks for more KV cache than the host has: recorded as failed, the HF one kept."""
    suite = pipeline.results / "fails.yaml"  # under RESULTS, which the services mount at /results
    suite.write_text(
        textwrap.dedent("""
        name: fails
        model: synthetic:tiny-llama
        workloads:
          w: {requests: 4, seed: 1, prompt_len: 16, output_len: 4}
        scenarios:
          - {name: hf-b2, stack: hf, mode: padded, batch_size: 2, workload: w, warmup_requests: 0}
          - {name: vllm-too-big, stack: vllm, workload: w, enforce_eager: true, kv_cache_space_gib: 4096,
             max_model_len: 64}
    """)
    )
    out = pipeline.make("bench", "RUN_ID=e2e-fails", "SUITE=/results/fails.yaml")
    assert out.returncode != 0
    said = out.stdout + out.stderr
    assert "vllm: exit 1" in said and "hf: exit 0" in said and "collector: exit 0" in said
    assert not re.search(r"(?m)^\d+$", out.stderr), out.stderr[-2000:]  # compose v1's bare exit status, left out
    run = pipeline.results / "e2e-fails"
    results = results_of(run)
    assert results["hf-b2"].status == "ok" and results["vllm-too-big"].status == "failed"
    assert "vllm-too-big" in (run / "report" / "report.md").read_text()


def test_bench_serves_both_stacks_through_compose(pipeline):
    """COMMAND=serve: each stack's container runs its server under the suite's serving plan, on loopback
    (the containers have no network), and the collector reports both."""
    suite = pipeline.results / "serve.yaml"
    suite.write_text(
        textwrap.dedent("""
        name: serve
        model: synthetic:tiny-llama
        workloads:
          w: {requests: 6, seed: 1, prompt_len: {dist: uniform, min: 8, max: 24}, output_len: 4}
        scenarios:
          - {name: hf-serve, stack: hf, mode: paged, workload: w}
          - {name: vllm-serve, stack: vllm, workload: w, enforce_eager: true, kv_cache_space_gib: 1,
             max_model_len: 128}
        serving: {rates: [4], concurrency: [2]}
    """)
    )
    out = pipeline.make("bench", "RUN_ID=e2e-serve", "SUITE=/results/serve.yaml", "COMMAND=serve")
    said = out.stdout + out.stderr
    assert out.returncode == 0, said[-3000:]
    run = pipeline.results / "e2e-serve"
    for stack in ("hf", "vllm"):
        result = json.loads((run / stack / f"serving-{stack}-{stack}-serve.json").read_text())
        assert result["status"] == "ok" and [x["completed"] for x in result["loads"]] == [6, 6]
    report = (run / "report" / "report.md").read_text()
    assert "### Online serving" in report and "| vllm-serve | concurrency 2 | 6 / 6 | 0 |" in report


def test_a_collector_failure_is_not_masked(pipeline):
    out = pipeline.make("report", "RUN_ID=no-such-run")
    assert out.returncode != 0


def test_compare_passes_a_run_against_itself_and_catches_a_regression(pipeline, full):
    _, run = full
    same = pipeline.make("compare", "BASELINE=e2e-full", "RUN_ID=e2e-full")
    assert same.returncode == 0, same.stdout[-2000:] + same.stderr[-2000:]
    slow = pipeline.results / "e2e-slow"
    slow.mkdir()
    for path in run.rglob("*.json"):
        data = json.loads(path.read_text())
        if data.get("status") == "ok" and data.get("metrics"):  # the same tokens in twice the time
            metrics = data["metrics"]
            metrics["elapsed_s"] *= 2
            for rate in ("output_tokens_per_s", "prompt_tokens_per_s", "total_tokens_per_s", "requests_per_s"):
                metrics[rate] /= 2
        copy = slow / path.relative_to(run)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(json.dumps(data))
    # Smoke runs last well under 30 s: a change on them is too short to judge, and the gate fails closed...
    short = pipeline.make("compare", "BASELINE=e2e-full", "RUN_ID=e2e-slow")
    assert short.returncode != 0 and "too short to judge" in short.stdout, short.stdout[-2000:] + short.stderr[-2000:]
    allowed = pipeline.make("compare", "BASELINE=e2e-full", "RUN_ID=e2e-slow", "ALLOW_MISSING=1")  # ...unless allowed
    assert allowed.returncode == 0 and "NOT COMPARED" in allowed.stdout, allowed.stdout[-2000:] + allowed.stderr[-2000:]
    worse = pipeline.make("compare", "BASELINE=e2e-full", "RUN_ID=e2e-slow", "MIN_RUN_S=0")
    # make exits 2 whenever a recipe fails; the gate's own verdict is in what it printed.
    assert worse.returncode != 0 and "REGRESSION" in worse.stdout, worse.stdout[-2000:] + worse.stderr[-2000:]
    assert "regression(s) beyond 5.0%" in worse.stdout
    missing = pipeline.make("compare", "BASELINE=nope", "RUN_ID=e2e-full")
    assert missing.returncode == 2 and "no run nope" in missing.stderr


def test_gpu_forced_without_a_gpu_stops_in_preflight(pipeline):
    out = pipeline.make("bench", "DEVICE=gpu", "RUN_ID=e2e-gpu", env={"NVIDIA_SMI": "/nonexistent/nvidia-smi"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "nvidia-smi is not found" in out.stderr and "Building" not in out.stdout + out.stderr
    assert not (pipeline.results / "e2e-gpu").exists()


def test_preflight_finds_a_missing_container_toolkit(pipeline):
    """A driver is there (a stand-in nvidia-smi) but the engine has no NVIDIA runtime: stop before the build."""
    smi = pipeline.tree / "nvidia-smi"
    smi.write_text(
        '#!/bin/sh\ncase "$*" in *driver_version*) echo 580.95.05;; *compute-apps*) ;; '
        "*) echo 'NVIDIA H100 80GB HBM3';; esac\n"
    )
    smi.chmod(0o755)
    base = pipeline.knobs.get("DEBIAN_BASE", DEBIAN_BASE)  # here, unlike the CUDA bases
    out = pipeline.make("preflight", "DEVICE=gpu", f"HF_BASE={base}", f"VLLM_BASE={base}", env={"NVIDIA_SMI": str(smi)})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "ok for cu130" in out.stdout and "install the NVIDIA container toolkit" in out.stderr


def test_hf_image_compiles_at_run_time_and_keeps_the_cache(pipeline, full):
    """transformers compiles generate() with a static cache on a GPU; inductor then needs a compiler, the
    Python headers and an executable /tmp, in the service as compose runs it. On the CPU inductor compiles
    C++ with the same tools, and its cache lands in the stack's cache volume."""
    code = "import torch; f = torch.compile(lambda x: (x.sin() + x.cos()).sum()); print(float(f(torch.arange(8.0))))"
    out = pipeline.compose("run", "--rm", "--no-deps", "--entrypoint", "python", "hf", "-c", code, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    cached = pipeline.compose(
        "run", "--rm", "--no-deps", "--entrypoint", "find", "hf", "/cache/inductor", "-name", "*.so"
    )
    assert cached.returncode == 0 and cached.stdout.strip(), cached.stdout + cached.stderr


def test_images_carry_their_revision(pipeline):
    for image in ("pagedbench-hf:0.1.0-cpu", "pagedbench-vllm:0.1.0-cpu", "pagedbench-collector:0.1.0"):
        out = docker(pipeline.engine.host, "image", "inspect", image, "--format", "{{json .Config.Labels}}")
        labels = json.loads(out.stdout)
        assert labels["org.opencontainers.image.revision"] == pipeline.knobs["GIT_SHA"]
        assert labels["org.opencontainers.image.version"] == "0.1.0"
