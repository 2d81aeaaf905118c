"""Images, compose and locks, checked without a Docker engine."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.stacks import recorded_packages

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
LOCKS = sorted((ROOT / "docker" / "locks").glob("*.txt"))


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text())  # resolves the anchors and merge keys


@pytest.fixture(scope="module")
def gpu():
    return yaml.safe_load((ROOT / "compose.gpu.yaml").read_text())


STACKS = ("hf", "vllm")


def test_gpu_reservation_only_in_the_gpu_file(compose, gpu):
    for name, ids in (("prepare", "${GPU:-0}"), ("hf", "${GPUS_HF:-0}"), ("vllm", "${GPUS_VLLM:-0}")):
        devices = gpu["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "device_ids": [ids], "capabilities": ["gpu"]}]
    assert "collector" not in gpu["services"]
    assert not any("deploy" in s for s in compose["services"].values()), "the CPU variant must run without a GPU"


def test_results_shared_and_models_read_only(compose):
    for name in ("hf", "vllm", "collector"):
        assert "${RESULTS:-./results}:/results" in compose["services"][name]["volumes"]
    for name in STACKS:
        s = compose["services"][name]
        assert "models:/models:ro" in s["volumes"] and s["read_only"] is True
        assert s["environment"]["HF_HUB_OFFLINE"] == "1" and s["network_mode"] == "none"
    assert "models:/models" in compose["services"]["prepare"]["volumes"]
    assert compose["services"]["collector"]["network_mode"] == "none"


def test_prepare_runs_as_the_stacks_do(compose):
    """The stacks read what prepare wrote into the models volume: the same uid, not the image's own."""
    users = {compose["services"][name]["user"] for name in ("prepare", *STACKS, "collector")}
    assert users == {"${RUN_UID:-10001}:${RUN_GID:-10001}"}


def test_stacks_can_compile_at_run_time(compose):
    """Triton and inductor build launchers and kernels at run time (transformers compiles generate() with a
    static cache on CUDA): both stacks need an executable /tmp, shared memory, a compiler and Python headers."""
    for name in ("prepare", *STACKS):
        assert "/tmp:exec" in compose["services"][name]["tmpfs"], name
    for name in STACKS:
        assert compose["services"][name]["shm_size"], name
        assert compose["services"][name]["build"]["dockerfile"] == "docker/stack.Dockerfile"
    base = (ROOT / "docker" / "stack.Dockerfile").read_text().split("FROM base AS deps")[0]
    for package in ("gcc", "g++", "python3-dev"):
        assert re.search(rf"\s{re.escape(package)}\s", base), package


def test_compile_caches_outlive_the_containers(compose):
    """vLLM's, Triton's and inductor's caches on a volume per stack image, not on the /tmp tmpfs."""
    dockerfile = (ROOT / "docker" / "stack.Dockerfile").read_text()
    for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "VLLM_CACHE_ROOT", "XDG_CACHE_HOME"):
        assert re.search(rf"{var}=/cache\b", dockerfile), var
    assert "hf-cache:/cache" in compose["services"]["hf"]["volumes"]
    assert "vllm-cache:/cache" in compose["services"]["vllm"]["volumes"]
    assert compose["volumes"]["hf-cache"]["name"].startswith("pagedbench-cache-${HF_CACHE_KEY")


def test_images_carry_oci_labels():
    for f in DOCKERFILES:
        text = f.read_text()
        for label in ("revision", "source", "version"):
            assert f"org.opencontainers.image.{label}=" in text, (f.name, label)


def test_order_stacks_never_share_the_gpu(compose):
    s = compose["services"]
    assert s["vllm"]["depends_on"] == {"hf": {"condition": "service_completed_successfully"}}
    assert set(s["collector"]["depends_on"]) == {"hf", "vllm"}


def test_workflows():
    gpu_flow = yaml.safe_load((ROOT / ".github" / "workflows" / "gpu.yml").read_text())
    job = gpu_flow["jobs"]["bench"]
    assert gpu_flow["permissions"] == {"contents": "read"}
    runs = [step.get("run", "") for step in job["steps"]]
    assert not any("${{" in run for run in runs), "expressions inside run: are injected as code: pass them via env"
    assert any(step.get("if") == "always()" and "down" in step.get("run", "") for step in job["steps"])
    assert "${{ github.sha }}" in str(job["env"]["TAG"])
    # actions/checkout cleans ignored files: the baseline must live outside the checkout.
    assert any("RESULTS=" in run and "RUNNER_WORKSPACE" in run for run in runs)
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "|| true" not in ci


def test_no_token_baked_into_images():
    for f in DOCKERFILES:
        assert "HF_TOKEN" not in f.read_text()


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose (Debian's parser) not installed")
@pytest.mark.parametrize("files", ["compose.yaml", "compose.yaml:compose.gpu.yaml"])
def test_compose_parser_accepts_it(files):
    out = subprocess.run(
        ["docker-compose", "config"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "RUN_ID": "t", "COMPOSE_FILE": files},
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    gpu = config["services"]["hf"].get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert (gpu is not None) == files.endswith("gpu.yaml")
    assert config["services"]["collector"]["command"][1] == "/results/t"


def test_makefile_defaults_agree_with_compose(compose):
    makefile = (ROOT / "Makefile").read_text()
    patch = re.search(r"^BASE_TAG_cu130 := (\S+)$", makefile, re.M).group(1)
    assert patch == "13.0.3", "the newest patch release of the CUDA 13.0 line"
    assert f"nvidia/cuda:{patch}-runtime-ubuntu24.04" in compose["services"]["hf"]["build"]["args"]["STACK_BASE"]
    assert f"nvidia/cuda:{patch}-devel-ubuntu24.04" in compose["services"]["vllm"]["build"]["args"]["STACK_BASE"]
    debian = re.search(r"^DEBIAN_BASE \?= (\S+)$", makefile, re.M).group(1)
    assert debian in compose["services"]["collector"]["build"]["args"]["PYTHON_BASE"]


def test_no_latest_tags():
    texts = [f.read_text() for f in DOCKERFILES] + [
        (ROOT / "compose.yaml").read_text(),
        (ROOT / "Makefile").read_text(),
    ]
    for text in texts:
        assert ":latest" not in text
    for f in DOCKERFILES:
        base = re.search(r"^ARG (?:STACK|PYTHON)_BASE=(\S+)$", f.read_text(), re.M).group(1)
        assert re.search(r":\d+\.\d+(\.\d+)?-", base), f"{f.name}: base {base} is not an exact tag"


def test_images_run_as_non_root():
    for f in DOCKERFILES:
        users = re.findall(r"^USER (\S+)$", f.read_text(), re.M)
        assert users and users[-1] not in ("root", "0")


def pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", path.read_text(), re.M))


def test_locks_are_complete_and_hashed():
    assert {p.name for p in LOCKS} >= {"hf-cu130.txt", "vllm-cu130.txt", "collector.txt"}
    for lock in LOCKS:
        text = lock.read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.strip())
        for entry in entries:
            if entry.startswith("#"):
                continue
            assert "==" in entry and "--hash=sha256:" in entry, f"{lock.name}: unhashed entry {entry.splitlines()[0]}"


def requested(name: str) -> dict[str, str]:
    """The pins of docker/requirements/NAME.in, with those of the files it includes."""
    wanted: dict[str, str] = {}
    for line in (ROOT / "docker" / "requirements" / f"{name}.in").read_text().splitlines():
        if line.startswith("-r "):
            wanted |= requested(line.split()[1].removesuffix(".in"))
    return wanted | pins(ROOT / "docker" / "requirements" / f"{name}.in")


@pytest.mark.parametrize("lock", [p.name for p in LOCKS])
def test_locks_pin_the_requested_versions(lock):
    """What the images install is what requirements/*.in asked for, and so what results will report."""
    name = lock.removesuffix(".txt")
    source = name if (ROOT / "docker" / "requirements" / f"{name}.in").exists() else name.split("-")[0]
    locked = {k.lower(): v for k, v in pins(ROOT / "docker" / "locks" / lock).items()}
    for package, version in requested(source).items():
        assert locked.get(package.lower()) == version, f"{lock}: {package} {locked.get(package.lower())} != {version}"
    if source.startswith(("hf", "vllm")):
        assert {"torch", "transformers"} <= {p for p in recorded_packages() if p in locked}
    for unwanted in ("torchvision", "torchaudio", "torchcodec"):
        assert not name.endswith("-cpu") or unwanted not in locked, f"{lock}: {unwanted} breaks CPU torch"


def test_validated_versions_in_the_stacks():
    hf = pins(ROOT / "docker" / "locks" / "hf-cu130.txt")
    vllm = pins(ROOT / "docker" / "locks" / "vllm-cu130.txt")
    assert hf["torch"] == vllm["torch"] == "2.11.0" and vllm["vllm"] == "0.26.0"
    assert hf["transformers"].startswith("5.17.") and "torch" not in pins(ROOT / "docker" / "locks" / "collector.txt")
    hf_cpu = pins(ROOT / "docker" / "locks" / "hf-cpu.txt")
    vllm_cpu = pins(ROOT / "docker" / "locks" / "vllm-cpu.txt")
    assert hf_cpu["torch"] == vllm_cpu["torch"] == "2.13.0+cpu" and vllm_cpu["vllm-cpu"] == "0.32.0"


def test_collector_lock_resolves(tmp_path):
    """Every pinned file exists with its hash (downloads the small collector set; skipped offline)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--no-deps",
        "--require-hashes",
        "--ignore-installed",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--platform",
        "manylinux_2_28_x86_64",
        "--platform",
        "manylinux_2_17_x86_64",
        "--platform",
        "manylinux2014_x86_64",
        "--target",
        str(tmp_path),
        "--timeout",
        "20",
        "-r",
        str(ROOT / "docker" / "locks" / "collector.txt"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0 and ("NewConnectionError" in out.stderr or "Temporary failure" in out.stderr):
        pytest.skip("package index not reachable")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Would install" in out.stdout


def test_preflight_refuses_parallel_stacks_on_shared_gpus():
    def preflight(device="gpu", **env):
        return subprocess.run(
            ["bash", str(ROOT / "scripts" / "preflight.sh"), "cu130", "0"],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "DOCKER": "/bin/false", "DEVICE": device, **env},
        )

    shared = preflight(PARALLEL="1", GPUS_HF="0,1", GPUS_VLLM="1,2")
    assert shared.returncode == 2 and shared.stderr.strip().splitlines() == [
        "preflight: PARALLEL=1 needs disjoint GPU sets; GPUS_HF (0,1) and GPUS_VLLM (1,2) share GPU 1"
    ]
    same = preflight(PARALLEL="1")  # both default to GPU 0
    assert same.returncode == 2 and "share GPU 0" in same.stderr
    cpu = preflight(device="cpu", PARALLEL="1", GPUS_HF="0", GPUS_VLLM="1")
    assert cpu.returncode == 2 and "the CPU variant has none" in cpu.stderr
    # Disjoint sets pass this check (and go on to the next: here, no nvidia-smi).
    apart = preflight(PARALLEL="1", GPUS_HF="0,1", GPUS_VLLM="2,3")
    assert "disjoint" not in apart.stderr and "nvidia-smi is not found" in apart.stderr
    assert "disjoint" not in preflight(GPUS_HF="0", GPUS_VLLM="0").stderr  # one after the other: may share


def test_preflight_refuses_an_unknown_suite_before_docker_is_asked(tmp_path):
    """A typo in SUITE costs seconds, not a build: one line naming the suites there are, exit 2, whether or
    not Docker answers; a suite of the user's own must exist under RESULTS."""

    def preflight(**env):
        return subprocess.run(
            ["bash", str(ROOT / "scripts" / "preflight.sh"), "cu130", "0"],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "DOCKER": "/bin/false", "DEVICE": "cpu", **env},
        )

    typo = preflight(SUITE="defualt")
    assert typo.returncode == 2 and len(typo.stderr.strip().splitlines()) == 1
    builtin = sorted(p.stem for p in (ROOT / "bench" / "suites").glob("*.yaml"))
    assert typo.stderr.startswith("preflight: SUITE=defualt: no such suite; built in: " + ", ".join(builtin))
    assert "docker" not in typo.stderr.lower()
    missing = preflight(SUITE="/results/mine.yaml", RESULTS=str(tmp_path))
    assert missing.returncode == 2 and f"no such file {tmp_path}/mine.yaml" in missing.stderr
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    for ok in ({"SUITE": "/results/mine.yaml", "RESULTS": str(tmp_path)}, {"SUITE": "seed"}, {}):
        r = preflight(**ok)  # the suite passes; Docker (here /bin/false) is what fails next
        assert r.returncode == 2 and "SUITE" not in r.stderr and "no Docker engine answers" in r.stderr


def test_make_hands_each_stack_its_gpus_and_runs_them_at_once_with_parallel():
    # `make test` exports what compose reads (GPU, GPUS_HF, ...): the dry runs must not inherit them.
    env = {k: v for k, v in os.environ.items() if k not in ("GPU", "GPUS_HF", "GPUS_VLLM", "PARALLEL", "MAKEFLAGS")}

    def dry(*args):
        r = subprocess.run(
            ["make", "-n", "bench", "DEVICE=gpu", *args], capture_output=True, text=True, cwd=ROOT, env=env
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "GPUS_HF=3 GPUS_VLLM=3" in dry("GPU=3")  # both default to GPU
    parallel = dry("GPUS_HF=0", "GPUS_VLLM=1", "PARALLEL=1")
    assert "GPUS_HF=0 GPUS_VLLM=1" in parallel and "PARALLEL=1" in parallel
    assert "$service.console.log 2>&1 ) & pids=" in parallel and "wait" in parallel


def test_preflight_driver_check(tmp_path):
    def smi(driver: str, apps: str = "") -> Path:
        f = tmp_path / f"smi-{driver}"
        f.write_text(
            f"#!/bin/sh\ncase \"$*\" in *driver_version*) echo {driver};; *compute-apps*) printf '{apps}';;"
            " *) echo 'NVIDIA H100 80GB HBM3';; esac\n"
        )
        f.chmod(0o755)
        return f

    def preflight(variant, driver, apps="", strict="0", docker="/bin/true", device="gpu"):
        return subprocess.run(
            ["bash", str(ROOT / "scripts" / "preflight.sh"), variant, "0"],
            capture_output=True,
            text=True,
            env={
                "PATH": "/usr/bin:/bin",
                "NVIDIA_SMI": str(smi(driver, apps)),
                "STRICT_GPU": strict,
                "DOCKER": docker,
                "DEVICE": device,
            },
        )

    ok = preflight("cu130", "580.95.05")
    assert ok.returncode == 0 and "ok for cu130" in ok.stdout
    old = preflight("cu130", "570.124.06")
    assert old.returncode == 2 and "make bench CUDA=cu128" in old.stderr
    ancient = preflight("cu130", "535.104.05")
    assert ancient.returncode == 2 and "upgrade the driver" in ancient.stderr
    busy = preflight("cu130", "580.95.05", apps="1234, 2000 MiB\\n", strict="1")
    assert busy.returncode == 3 and "other process" in busy.stderr
    assert preflight("cu130", "580.95.05", apps="1234, 2000 MiB\\n").returncode == 0
    no_engine = preflight("cu130", "580.95.05", docker="/bin/false")
    assert no_engine.returncode == 2 and "no Docker engine answers" in no_engine.stderr
    assert preflight("cpu", "580.95.05", docker="/bin/false", device="cpu").returncode == 2
    cpu = preflight("cpu", "", device="cpu")
    assert cpu.returncode == 0 and "CPU variant" in cpu.stdout


def test_make_report_names_the_run_it_rebuilds_or_says_there_is_none(tmp_path):
    """Without RUN_ID, `make report` takes the latest run under RESULTS (never a new timestamp that names
    no run); with none there, or a RUN_ID that is not there, one line and exit 2 before Docker is asked."""

    def report(*args, target="report", **env):
        return subprocess.run(["make", "-s", target, f"RESULTS={tmp_path}", *args], capture_output=True, text=True,
                              cwd=ROOT, env={"PATH": "/usr/bin:/bin", "DOCKER": "/bin/false", **env})  # fmt: skip

    none = report()
    assert none.returncode == 2 and none.stderr.startswith(f"make report: no run under {tmp_path} (")
    (tmp_path / "20260101T000000Z").mkdir()
    missing = report("RUN_ID=nope")
    assert missing.returncode == 2 and missing.stderr.startswith(f"make report: no run nope under {tmp_path}\n")
    from_env = report(RUN_ID="nope")  # as a CI job's environment names it
    assert from_env.returncode == 2 and from_env.stderr.startswith(f"make report: no run nope under {tmp_path}\n")
    # compare judges a run the user names, never a fresh timestamp's
    unnamed = report("BASELINE=20260101T000000Z", target="compare")
    assert unnamed.returncode == 2 and unnamed.stderr.startswith("make compare: give RUN_ID=")
    absent = report("BASELINE=20260101T000000Z", target="compare", RUN_ID="nope")
    assert absent.returncode == 2 and absent.stderr.startswith(f"make compare: no run nope under {tmp_path}\n")
    # an empty RUN_ID would name RESULTS itself; a bare threshold, seconds that are no number, and a Docker
    # engine that does not answer (compose would print a traceback): one line each, before compose is asked
    run = ("BASELINE=20260101T000000Z", "RUN_ID=20260101T000000Z")
    for args, target, said in (
        (("RUN_ID=",), "report", f"make report: RUN_ID= is empty: name a run under {tmp_path} (or leave it out"),
        (("BASELINE=20260101T000000Z", "RUN_ID="), "compare", "make compare: RUN_ID= is empty"),
        ((*run, "MAX_REGRESSION=5"), "compare", "make compare: MAX_REGRESSION=5: give a percentage such as 5%"),
        ((*run, "MIN_RUN_S=abc"), "compare", "make compare: MIN_RUN_S=abc: give seconds"),
        (run, "compare", "make compare: no Docker engine answers"),
        ((), "report", "make report: no Docker engine answers"),
    ):
        r = report(*args, target=target)
        assert r.returncode == 2 and r.stderr.startswith(said) and r.stderr.count("\n") == 2, (args, r.stderr)
    dry = subprocess.run(["make", "-n", "report", f"RESULTS={tmp_path}"], capture_output=True, text=True, cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert "ls -1td" in dry.stdout and "RUN_ID=$run" in dry.stdout  # the latest, handed to the collector


def test_make_help_prints_what_a_user_types():
    out = subprocess.run(["make", "-s", "help"], capture_output=True, text=True, cwd=ROOT).stdout
    assert 'eval "$(make -s compose-env)"' in out and "$$" not in out


def test_preflight_says_where_a_model_directory_must_be(tmp_path):
    """The containers see RESULTS (as /results) and what a compose file of the user's own mounts: a host
    directory no compose file names is refused with where to put it, one under RESULTS must exist; presets
    and hub ids pass on to the next check."""

    def preflight(model, **more):
        env = {"PATH": "/usr/bin:/bin", "DOCKER": "/bin/false", "DEVICE": "cpu", "MODEL": model, **more}
        env["RESULTS"] = str(tmp_path)
        return subprocess.run(["bash", str(ROOT / "scripts" / "preflight.sh"), "cu130", "0"], capture_output=True,
                              text=True, env=env)  # fmt: skip

    host = preflight(str(tmp_path))
    assert host.returncode == 2 and len(host.stderr.strip().splitlines()) == 1
    assert f"copy it under {tmp_path} and give MODEL=/results/<its name>, or mount it" in host.stderr
    # A path the host does not have must be one a compose file of the user's own mounts (docs/running.md's
    # override), by its container side; a file is no model directory.
    nowhere = preflight("/local-model")
    assert nowhere.returncode == 2 and "MODEL=/local-model: no such directory here, and no compose" in nowhere.stderr
    override = tmp_path / "override.yaml"
    override.write_text('services: {hf: {volumes: ["/path/to/model:/local-model:ro"]}}\n')
    mounted = preflight("/local-model", COMPOSE_FILE=f"{ROOT / 'compose.yaml'}:{override}")
    assert "MODEL" not in mounted.stderr and "no Docker engine answers" in mounted.stderr
    assert "MODEL=/local" in preflight("/local", COMPOSE_FILE=f"{ROOT / 'compose.yaml'}:{override}").stderr
    assert "is a file: give the directory" in preflight(str(override)).stderr
    missing = preflight("/results/mine")
    assert missing.returncode == 2 and f"no such directory {tmp_path}/mine" in missing.stderr
    (tmp_path / "mine").mkdir()
    for ok in ("/results/mine", "synthetic:tiny-llama", "gpt2"):
        assert "MODEL" not in preflight(ok).stderr and "no Docker engine answers" in preflight(ok).stderr


def test_preflight_tells_every_mistake_of_a_command_line_at_once_before_docker():
    env = {"PATH": "/usr/bin:/bin", "DOCKER": "/bin/false", "DEVICE": "cpu", "DEVICE_ASKED": "cpux", "SUITE": "nosuch"}
    env |= {"PARALLEL": "2", "COMMAND": "serv", "GPUS_VLLM": "0;1", "RUN_ID": "../x", "RESULTS": "/nonexistent"}
    env |= {"MODEL": "/results/m", "GPU_HOUR_PRICE": "2,49", "SHM_SIZE": "16 GB", "PIP_CA": "/nonexistent.pem"}
    env |= {"WHEELHOUSE": "/proc", "CUDA": "cu129", "RESULTS": "/proc/results"}  # nothing can be made in /proc
    r = subprocess.run(["bash", str(ROOT / "scripts" / "preflight.sh"), "cpu", "0"], capture_output=True, text=True,
                       env=env)  # fmt: skip
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 13 and all(line.startswith("preflight: ") for line in lines)
    knobs = ("SUITE=nosuch", "MODEL=/results/m", "DEVICE=cpux", "PARALLEL=2", "COMMAND=serv", "GPUS_VLLM=0;1")
    knobs += ("CUDA=cu129", "RESULTS=/proc/results: no directory can be made in /proc")
    for knob in (*knobs, "GPU_HOUR_PRICE=2,49", "SHM_SIZE=16 GB", "PIP_CA=/nonexistent.pem", "WHEELHOUSE=/proc"):
        assert any(knob in line for line in lines), knob
    assert any(line.startswith("preflight: RUN_ID=../x") for line in lines)
    assert "docker" not in r.stderr.lower()  # no engine was asked


def test_preflight_tells_what_would_otherwise_fail_after_the_build(tmp_path):
    """A preset that does not exist (the presets read from the code), a MODEL of no form the code takes,
    COMMAND=serve on a suite with no serving plan, an empty CUDA, and a RESULTS that is a file or cannot be
    made: each told before Docker is asked, where it used to surface after minutes of building."""
    from bench.models.presets import PRESETS

    def preflight(**env):
        env = {"PATH": "/usr/bin:/bin", "DOCKER": "/bin/false", "DEVICE": "cpu", "RESULTS": str(tmp_path), **env}
        return subprocess.run(["bash", str(ROOT / "scripts" / "preflight.sh"), "cpu", "0"], capture_output=True,
                              text=True, env=env)  # fmt: skip

    for model in ("synthetic:nosuch", "synthetic:", "synthetic:tiny-llama@x", "synthetic:tiny-llama@"):
        r = preflight(MODEL=model)
        assert r.returncode == 2 and r.stderr.startswith(f"preflight: MODEL={model}: not a preset; give "), model
        assert r.stderr.rstrip().endswith("NAME one of " + ", ".join(sorted(PRESETS)))
    for model in [f"synthetic:{name}" for name in PRESETS] + ["synthetic:tiny-llama@7", "gpt2", "org/model-1.5B"]:
        assert "MODEL" not in preflight(MODEL=model).stderr, model
    own = tmp_path / "mine.yaml"
    own.write_text("name: mine\nserving:\n  rates: [1]\n")
    for suite in ("default", "smoke", "/results/mine.yaml", "serving"):  # only a suite with a serving plan serves
        said = preflight(COMMAND="serve", SUITE=suite).stderr
        assert ("no serving plan" in said) == (suite in ("default", "smoke")), suite
    own.unlink()
    for model in ("org/sub/model", "my model", "-x", "org/"):  # no hub id either
        assert preflight(MODEL=model).stderr.startswith(f"preflight: MODEL={model}: neither a hub id"), model
    assert preflight(CUDA="").stderr.startswith("preflight: CUDA=: give one of cu130 (NVIDIA driver >= 580), cu128")
    afile = tmp_path / "afile"
    afile.write_text("")
    assert "RESULTS=" + str(afile) + " is a file" in preflight(RESULTS=str(afile)).stderr
    below = preflight(RESULTS=f"{afile}/results")
    assert f"no directory can be made in {afile} here" in below.stderr
    deep = tmp_path / "new" / "deeper"
    ok = preflight(RESULTS=str(deep))  # made by make bench later; preflight leaves nothing behind
    assert "RESULTS" not in ok.stderr and "no Docker engine answers" in ok.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_preflight_refuses_a_knob_given_empty_and_a_gpu_named_twice(tmp_path):
    """make passes its knobs on: one given empty (SUITE=) would reach compose, which puts its own default in
    its place (the default suite on a CPU), and make's paths (RESULTS= makes /RUN_ID at the root). Told, with
    the default, before Docker is asked; GPUS_HF and GPUS_VLLM, which follow GPU, are not told again."""

    def preflight(**env):
        env = {"PATH": "/usr/bin:/bin", "DOCKER": "/bin/false", "DEVICE": "cpu", **env}
        return subprocess.run(["bash", str(ROOT / "scripts" / "preflight.sh"), "cpu", "0"], capture_output=True,
                              text=True, env=env)  # fmt: skip

    knobs = {"SUITE": "", "RESULTS": "", "RUN_ID": "", "COMMAND": "", "DEVICE_ASKED": "", "GPU": ""}
    r = preflight(**knobs, GPUS_HF="", GPUS_VLLM="")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == len(knobs), lines
    for knob in (name.removesuffix("_ASKED") for name in knobs):
        assert any(line.startswith(f"preflight: {knob}= is empty: give a value") for line in lines), knob
    assert "(./results)" in r.stderr and "docker" not in r.stderr.lower()
    alone = preflight(GPU="0", GPUS_VLLM="").stderr
    assert alone.startswith("preflight: GPUS_VLLM= is empty") and len(alone.splitlines()) == 1
    for value, twice in (("0,0", "0"), ("0,1,01", "1"), ("3,2,3,2", "2,3")):
        said = preflight(GPUS_HF=value).stderr
        assert said.startswith(f"preflight: GPUS_HF={value}: GPU {twice} named more than once"), said
    assert "GPU" not in preflight(GPUS_HF="0,1,10", RESULTS=str(tmp_path)).stderr  # unset knobs take defaults


@pytest.mark.parametrize(
    "model",
    ["gpt2", "org/model-1.5B", "a..b", "x_/y", "org/sub/model", "my model", "-x", "org/", "_x", "org//m",
     "synthetic:tiny-llama", "synthetic:tiny-llama@7", "synthetic:nosuch", "synthetic:tiny-llama@x", "synthetic:"],
)  # fmt: skip
def test_preflight_takes_the_model_forms_the_code_takes(model, tmp_path):
    """preflight is bash (a host needs no Python packages to run it), so it repeats bench/models/reference.py's
    forms of a hub id and a preset: the two must agree on every form, or one of them would refuse what the
    other takes."""
    from bench.errors import UserError
    from bench.models.reference import parse_model

    try:
        parse_model(model)
        code_takes = True
    except UserError:
        code_takes = False
    env = {"PATH": "/usr/bin:/bin", "DOCKER": "/bin/false", "DEVICE": "cpu", "RESULTS": str(tmp_path), "MODEL": model}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "preflight.sh"), "cpu", "0"], capture_output=True, text=True,
                       env=env, cwd=tmp_path)  # fmt: skip
    assert ("preflight: MODEL=" not in r.stderr) == code_takes, r.stderr


def test_compose_run_leaves_out_compose_v1_s_bare_exit_status(tmp_path):
    """Debian's docker-compose 1.29 logs a failed service's exit status as a line of its own; make says
    "SERVICE: exit N" itself. The wrapper drops that line for compose v1 only and keeps the exit status."""
    fake = tmp_path / "docker-compose"
    fake.write_text("#!/bin/sh\necho \"$*\"\necho 'Error: unknown preset' >&2\necho 2 >&2\nexit 2\n")
    fake.chmod(0o755)
    v2 = tmp_path / "docker"
    v2.write_text(fake.read_text())
    v2.chmod(0o755)

    def run(compose):
        env = {"PATH": "/usr/bin:/bin", "COMPOSE": compose}
        script = str(ROOT / "scripts" / "compose-run.sh")
        return subprocess.run([script, "run", "--rm", "prepare"], capture_output=True, text=True, env=env)

    v1 = run(str(fake))
    assert v1.returncode == 2 and v1.stdout == "run --rm prepare\n" and v1.stderr == "Error: unknown preset\n"
    plugin = run(f"{v2} compose")
    assert plugin.returncode == 2 and plugin.stdout == "compose run --rm prepare\n"
    assert plugin.stderr == "Error: unknown preset\n2\n"  # compose v2 prints no such line: nothing is taken


def _fake_docker(tmp_path, script: str) -> Path:
    f = tmp_path / "docker"
    f.write_text("#!/bin/sh\n" + script)
    f.chmod(0o755)
    return f


def test_preflight_says_what_the_build_will_use_and_refuses_a_base_it_cannot_get(tmp_path):
    """Before minutes of building: the legacy builder and the host network are said when chosen; a base
    image that is neither here nor pullable is refused with the recipe that makes it."""
    log = tmp_path / "calls"
    docker = _fake_docker(tmp_path, f'echo "$*" >> {log}\ncase "$*" in info) exit 0;; *) exit 1;; esac\n')

    def preflight(docker=docker, **env):
        env = {"PATH": "/usr/bin:/bin", "DOCKER": str(docker), "DEVICE": "cpu", **env}
        return subprocess.run(["bash", str(ROOT / "scripts" / "preflight.sh"), "cpu", "0"], capture_output=True,
                              text=True, env=env)  # fmt: skip

    debian = preflight(HF_BASE="debian:12.15-slim", PYTHON_BASE="debian:12.15-slim", DOCKER_BUILDKIT="0",
                       BUILD_NETWORK="host", PREPARE_NETWORK="host")  # fmt: skip
    assert debian.returncode == 2
    assert "legacy builder" in debian.stdout and "no bridge network" in debian.stdout
    assert debian.stderr.strip() == (
        "preflight: the base image debian:12.15-slim is not here and cannot be pulled: make it from Debian's "
        "archive: sudo scripts/base-image.sh debian:12.15-slim (needs debootstrap)"
    )
    assert log.read_text().count("pull -q debian:12.15-slim") == 1  # one base named twice is asked once
    cuda = preflight(VLLM_BASE="nvidia/cuda:13.0.3-devel-ubuntu24.04")
    assert cuda.returncode == 2 and "docker save nvidia/cuda:13.0.3-devel-ubuntu24.04 | docker load" in cuda.stderr
    ok = preflight(docker=_fake_docker(tmp_path, "exit 0\n"), HF_BASE="debian:12")  # every base present
    assert ok.returncode == 0 and "legacy" not in ok.stdout and "bridge" not in ok.stdout


@pytest.mark.parametrize(
    "script,expected",
    [
        ('case "$1" in buildx) exit 0;; info) exit 0;; esac\nexit 0\n', {"DOCKER_BUILDKIT?=1"}),
        ('case "$1" in buildx) exit 1;; --version) echo "Docker version 20.10.24+dfsg1, build 297e128";;'
         ' info) exit 0;; esac\nexit 0\n', {"DOCKER_BUILDKIT?=1"}),
        ('case "$1" in buildx) exit 1;; --version) echo "Docker version 28.2.2, build e6534b4";; info) exit 0;;'
         ' network) exit 1;; esac\nexit 0\n', {"DOCKER_BUILDKIT?=0", "BUILD_NETWORK?=host", "PREPARE_NETWORK?=host"}),
    ],
)  # fmt: skip
def test_make_chooses_the_builder_and_networks_this_docker_has(tmp_path, script, expected):
    docker = _fake_docker(tmp_path, script)
    ca, wheels = tmp_path / "ca.pem", tmp_path / "wheels"
    ca.write_text("x")
    wheels.mkdir()
    env = {"PATH": "/usr/bin:/bin", "DOCKER": str(docker), "PIP_CERT": str(ca), "PIP_FIND_LINKS": f"file://{wheels}"}
    out = subprocess.run([str(ROOT / "scripts" / "docker-auto.sh")], capture_output=True, text=True, env=env)
    assert out.returncode == 0
    assert set(out.stdout.split()) == expected | {f"PIP_CA?={ca}", f"WHEELHOUSE?={wheels}"}
    env |= {"PIP_CERT": str(tmp_path / "missing.pem"), "PIP_FIND_LINKS": "https://example.invalid/wheels"}
    none = subprocess.run([str(ROOT / "scripts" / "docker-auto.sh")], capture_output=True, text=True, env=env)
    assert not any(line.startswith(("PIP_CA", "WHEELHOUSE")) for line in none.stdout.split())


def test_gpu_steps_checks_every_group_before_running_any(tmp_path):
    """scripts/gpu-steps.sh runs groups one after another for minutes each: a group that does not exist is
    told before the first runs (exit 2, the groups listed, nothing made), not after it."""
    script = ROOT / "scripts" / "gpu-steps.sh"
    env = {"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out"), "RESULTS": str(tmp_path / "r")}
    for args, said in (
        (["env", "nosuch"], "gpu-steps.sh: no group 'nosuch'; groups: env seed "),
        ([], "gpu-steps.sh: name one group or more: env "),
    ):
        r = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.startswith(said) and len(r.stderr.splitlines()) == 1, r.stderr
    assert list(tmp_path.iterdir()) == []
    listed = r.stderr.split(": ", 1)[1].split()
    assert {"sharing-hf-static", "default-hf", "serving-vllm", "energy"} <= set(listed) and "esac" not in listed


def test_make_refuses_a_knob_with_a_space_in_one_line(tmp_path):
    """make splits a recipe's words at spaces: RESULTS="/tmp/a b" reached the shell as two words (bash: b:
    command not found, exit 127; mkdir made /tmp/a and b/RUN_ID). Refused in one line, exit 2, for any target
    that passes the knob on."""
    for target, knob in (
        ("preflight", f"RESULTS={tmp_path}/a b"),
        ("report", "MODEL=my model"),
        ("bench", "SUITE=a b"),
    ):
        r = subprocess.run(["make", "-s", target, knob], capture_output=True, text=True, cwd=ROOT,
                           env={"PATH": "/usr/bin:/bin", "DOCKER": "/bin/false"})  # fmt: skip
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
        assert f"{knob}: a value with a space cannot pass through make" in r.stderr
    assert list(tmp_path.iterdir()) == []
