"""Kubernetes Jobs for a fleet run: one Job per (suite, stack) with the project's images and one GPU each
(more for a scenario that splits its model), the model prepared first, the collector last; every Job
writes into one shared results volume, so the collector merges them as `make bench` does.

    python scripts/k8s_jobs.py --suite default --suite capacity --run-id fleet-1 \\
        --image-prefix registry.example/pagedbench > jobs.yaml
    kubectl apply -f deploy/k8s/volumes.yaml -f jobs.yaml

The Jobs of one run go in order through Kubernetes' own means: prepare first (the stacks' init container
waits for its marker), the collector's init container waits for every stack's marker. Nothing here needs
anything but kubectl."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.errors import UserError  # noqa: E402
from bench.stacks import STACKS  # noqa: E402
from bench.suite import builtin_suites, load_suite  # noqa: E402

VERSION = "0.1.0"
SECURITY = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _volumes(shm: bool) -> list[dict]:
    volumes = [
        {"name": "results", "persistentVolumeClaim": {"claimName": "pagedbench-results"}},
        {"name": "models", "persistentVolumeClaim": {"claimName": "pagedbench-models"}},
        {"name": "cache", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if shm:  # vLLM's engine core and workers exchange tensors through shared memory
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}})
    return volumes


def _mounts(models_ro: bool, shm: bool) -> list[dict]:
    mounts = [
        {"name": "results", "mountPath": "/results"},
        {"name": "models", "mountPath": "/models", "readOnly": models_ro},
        {"name": "cache", "mountPath": "/cache"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    return mounts + ([{"name": "dshm", "mountPath": "/dev/shm"}] if shm else [])


def _wait_for(markers: list[str], image: str) -> dict:
    """An init container that waits until every marker file exists on the results volume."""
    test = " && ".join(f"[ -e {m} ]" for m in markers)
    return {
        "name": "wait",
        "image": image,
        "command": ["sh", "-c", f"until {test}; do sleep 10; done"],
        "volumeMounts": [{"name": "results", "mountPath": "/results"}],
        "securityContext": SECURITY,
    }


def job(
    name: str,
    labels: dict,
    container: dict,
    *,
    gpus: int,
    shm: bool,
    init: dict | None = None,
    product: str | None = None,
) -> dict:
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    container["securityContext"] = SECURITY
    spec = {
        "restartPolicy": "Never",
        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001, "runAsNonRoot": True},
        "containers": [container],
        "volumes": _volumes(shm),
    }
    if init:
        spec["initContainers"] = [init]
    if gpus and product:  # one GPU type per run: the label NVIDIA's GPU feature discovery puts on nodes
        spec["nodeSelector"] = {"nvidia.com/gpu.product": product}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "pagedbench", **labels}},
        "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 7 * 86400, "template": {"spec": spec}},
    }


def gpus_needed(suite, stack: str) -> int:
    """The most GPUs one scenario of the stack runs on (a split model's ranks, layers placed over two)."""
    return max((s.min_gpus() for s in suite.scenarios if s.stack == stack), default=1)


def jobs(suites: list[str], run_id: str, prefix: str, variant: str, product: str | None = None) -> list[dict]:
    images = {n: f"{prefix}/pagedbench-{n}:{VERSION}-{variant}" for n, s in STACKS.items() if s.role != "test"}
    collector = f"{prefix}/pagedbench-collector:{VERSION}"
    out, markers = [], []
    for name in suites:
        suite = load_suite(name)
        stacks = [n for n in images if any(s.stack == n for s in suite.scenarios)]
        ready = f"/results/{run_id}/{suite.name}.prepared"
        base = {"pagedbench/run": run_id, "pagedbench/suite": suite.name}
        prepare = {
            "name": "prepare",
            "image": images[stacks[0]],
            "command": [
                "sh",
                "-c",
                f"pagedbench prepare --suite {name} && mkdir -p /results/{run_id} && touch {ready}",
            ],
            "volumeMounts": _mounts(models_ro=False, shm=False),
        }
        out.append(job(f"pagedbench-{run_id}-{suite.name}-prepare", base, prepare, gpus=1, shm=False, product=product))
        for stack in stacks:
            done = f"/results/{run_id}/{suite.name}-{stack}.done"
            run = f"pagedbench run --stack {stack} --suite {name} --out /results/{run_id} --run-id {suite.name}-{stack}"
            container = {
                "name": stack,
                "image": images[stack],
                # The marker is left whatever the run did: the collector reports a failed stack too.
                "command": ["sh", "-c", f"{run}; rc=$?; touch {done}; exit $rc"],
                "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}],
                "volumeMounts": _mounts(models_ro=True, shm=STACKS[stack].shared_memory),
            }
            labels = base | {"pagedbench/stack": stack}
            out.append(
                job(
                    f"pagedbench-{run_id}-{suite.name}-{stack}",
                    labels,
                    container,
                    gpus=gpus_needed(suite, stack),
                    shm=STACKS[stack].shared_memory,
                    init=_wait_for([ready], images[stack]),
                    product=product,
                )
            )
            markers.append(done)
    collect = {
        "name": "collector",
        "image": collector,
        "args": ["collect", f"/results/{run_id}", "--out", f"/results/{run_id}/report"],
        "volumeMounts": [{"name": "results", "mountPath": "/results"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    out.append(
        job(
            f"pagedbench-{run_id}-collector",
            {"pagedbench/run": run_id},
            collect,
            gpus=0,
            shm=False,
            init=_wait_for(markers, collector),
        )
    )
    return out


# What Kubernetes accepts: a DNS label (Job names, label values are stricter than names), an image reference's
# registry and path (lower case), a label value.
RUN_ID = re.compile(r"[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?")
IMAGE_PREFIX = re.compile(
    r"[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9]+([._-][a-z0-9]+)*)*(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
)
LABEL_VALUE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,61})?[A-Za-z0-9]")
MAX_NAME = 63  # a Job's name goes into its pods' job-name label
VARIANTS = ("cu130", "cu128")  # the CUDA images (`make build CUDA=...`)


def check(a) -> None:
    """Every argument as Kubernetes and the images will take it, before a manifest is written."""
    if not RUN_ID.fullmatch(a.run_id):
        raise UserError(
            f"--run-id {a.run_id!r}: give 1 to 30 lower-case letters, digits and '-', starting and ending with a "
            "letter or digit (it names the Jobs and labels them)"
        )
    if not IMAGE_PREFIX.fullmatch(a.image_prefix):
        raise UserError(
            f"--image-prefix {a.image_prefix!r}: give where the images were pushed, as registry[:port]/namespace "
            "in lower case (e.g. registry.example:5000/pagedbench)"
        )
    if a.gpu_product is not None and not LABEL_VALUE.fullmatch(a.gpu_product):
        raise UserError(f"--gpu-product {a.gpu_product!r}: a node label value (at most 63 letters, digits, '-_.')")
    known = builtin_suites()
    for name in a.suite:
        if name not in known:
            raise UserError(
                f"--suite {name!r}: the Jobs run the suites built into the images; give one of {', '.join(known)}"
            )
        suite = load_suite(name)
        stacks = [n for n, spec in STACKS.items() if spec.role != "test" and any(x.stack == n for x in suite.scenarios)]
        if not stacks:
            raise UserError(f"--suite {name}: it has no scenario of a stack with an image ({', '.join(STACKS)})")
        longest = max(len(f"pagedbench-{a.run_id}-{suite.name}-{x}") for x in [*stacks, "prepare"])
        if longest > MAX_NAME:
            raise UserError(f"--run-id {a.run_id!r}: the Job names of suite {name} would be over {MAX_NAME} characters")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as the rest of the tool answers a bad argument
        print(f"Error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv=None) -> int:
    p = _Parser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", action="append", required=True, help="a built-in suite (repeatable)")
    p.add_argument("--run-id", required=True, help="lower-case letters, digits and '-': it names the Jobs")
    p.add_argument("--image-prefix", required=True, help="where the images were pushed (registry/namespace)")
    p.add_argument("--variant", default="cu130", choices=VARIANTS)
    p.add_argument("--gpu-product", default=None, help="run on nodes of this GPU type only (nvidia.com/gpu.product)")
    a = p.parse_args(argv)
    check(a)
    docs = jobs(a.suite, a.run_id, a.image_prefix, a.variant, a.gpu_product)
    text = yaml.safe_dump_all(docs, sort_keys=False)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # a reader that stopped early (| head)
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
