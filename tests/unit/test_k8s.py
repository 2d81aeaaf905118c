"""The fleet's Kubernetes manifests: valid against the Kubernetes schemas (strict: no unknown field), one
Job per (suite, stack) with its GPUs, the model prepared first and the collector last."""

import subprocess
import sys

import pytest
import yaml

from bench.suite import builtin_suites, load_suite
from tests.conftest import ROOT

kubernetes_validate = pytest.importorskip("kubernetes_validate")
SCRIPT = ROOT / "scripts" / "k8s_jobs.py"


def generate(*args):
    r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)
    return r, [d for d in yaml.safe_load_all(r.stdout) if d] if r.returncode == 0 else []


def validate(doc):
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_the_committed_manifests_are_valid():
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            validate(doc)


def test_the_committed_example_is_what_the_generator_writes():
    r, docs = generate("--suite", "default", "--run-id", "example", "--image-prefix", "registry.example/pagedbench")
    committed = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "jobs-default.yaml").read_text()))
    assert docs == committed


def test_every_suite_gives_valid_jobs_in_order():
    suites = sorted(builtin_suites())
    args = [x for s in suites for x in ("--suite", s)]
    r, docs = generate(*args, "--run-id", "fleet-1", "--image-prefix", "reg/pb")
    assert r.returncode == 0, r.stderr
    for doc in docs:
        validate(doc)
    names = [d["metadata"]["name"] for d in docs]
    assert names[-1] == "pagedbench-fleet-1-collector" and len(set(names)) == len(names)
    stacks = [d for d in docs if "pagedbench/stack" in d["metadata"]["labels"]]
    expected = {(s, sc.stack) for s in suites for sc in load_suite(s).scenarios if sc.stack != "fake"}
    assert {
        (d["metadata"]["labels"]["pagedbench/suite"], d["metadata"]["labels"]["pagedbench/stack"]) for d in stacks
    } == {(load_suite(s).name, st) for s, st in expected}
    for d in stacks:
        pod = d["spec"]["template"]["spec"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] >= 1
        assert "prepared" in pod["initContainers"][0]["command"][-1]  # waits for its suite's model
    collector = docs[-1]["spec"]["template"]["spec"]
    waits = collector["initContainers"][0]["command"][-1]
    assert all(
        f"{d['metadata']['labels']['pagedbench/suite']}-{d['metadata']['labels']['pagedbench/stack']}.done" in waits
        for d in stacks
    )
    assert "resources" not in collector["containers"][0]  # the collector needs no GPU


def test_a_split_model_gets_its_gpus(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    import k8s_jobs

    from bench.suite import make_scenario

    suite = load_suite("smoke")
    suite.scenarios.append(make_scenario(name="v-tp2", stack="vllm", workload=suite.scenarios[0].workload,
                                         tensor_parallel_size=2, pipeline_parallel_size=2))  # fmt: skip
    assert k8s_jobs.gpus_needed(suite, "vllm") == 4 and k8s_jobs.gpus_needed(suite, "hf") == 1
    assert k8s_jobs.gpus_needed(load_suite("multi-gpu"), "hf") == 2  # its layers placed over two GPUs


def test_one_gpu_type_per_run_by_node_selector():
    r, docs = generate(
        "--suite", "seed", "--run-id", "h100", "--image-prefix", "reg/pb", "--gpu-product", "NVIDIA-H100-80GB-HBM3"
    )
    for doc in docs:
        validate(doc)
        pod = doc["spec"]["template"]["spec"]
        gpu = "resources" in pod["containers"][0]
        assert (pod.get("nodeSelector") == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}) == gpu


def test_a_run_id_that_cannot_name_a_job_is_refused():
    r, _ = generate("--suite", "default", "--run-id", "Fleet_1", "--image-prefix", "reg/pb")
    assert r.returncode == 2 and "--run-id" in r.stderr
