"""Faults injected during runs: the results written before stay complete and valid, the scenario in flight
is recorded for what it is, the run ends with a clear error and exit code, and nothing hangs."""

import contextlib
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from bench.results import Result, load_result, scan_results
from tests.conftest import ROOT, has, run_cli

pytestmark = pytest.mark.fault

ROOT_USER = os.geteuid() == 0


def start_cli(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def wait_for(predicate, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def valid_results(path: Path, checked) -> list[Result]:
    found = []
    for f, r in scan_results(path):
        assert isinstance(r, Result), f"{f}: {r}"
        checked.append(str(f))
        found.append(r)
    assert not list(path.rglob("*.tmp")), "a temporary file was left behind"
    return found


def suite(tmp_path, text) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def fake_suite(tmp_path, *names: str, requests: int = 2, output_len: int = 4) -> Path:
    """A suite of fake-runner scenarios `names` (no engine: the harness, its writers and its signals)."""
    scenarios = "".join(f"\n  - {{name: {n}, stack: fake, workload: w, warmup_requests: 0}}" for n in names)
    return suite(
        tmp_path,
        "name: fake\nmodel: synthetic:tiny-llama\nworkloads:\n"
        f"  w: {{requests: {requests}, prompt_len: 8, output_len: {output_len}}}\nscenarios:{scenarios}\n",
    )


def interruptible_suite(tmp_path, second: str = "") -> Path:
    """A quick scenario, a long one to interrupt (with the knobs `second`), and one that must then not run."""
    return suite(
        tmp_path,
        f"""
        name: term
        model: synthetic:tiny-llama
        workloads:
          quick: {{requests: 4, prompt_len: 8, output_len: 4}}
          long: {{requests: 400, prompt_len: 64, output_len: 64}}
        scenarios:
          - {{name: first, stack: hf, mode: padded, batch_size: 4, workload: quick, warmup_requests: 0}}
          - {{name: second, stack: hf, mode: sequential, workload: long, warmup_requests: 0{second}}}
          - {{name: third, stack: hf, mode: padded, batch_size: 4, workload: quick, warmup_requests: 0}}
    """,
    )


def test_sigterm_mid_suite_keeps_finished_results(tmp_path, checked):
    s = interruptible_suite(tmp_path)
    out = tmp_path / "out"
    p = start_cli("run", "--stack", "hf", "--suite", s, "--out", out, "--run-id", "r")
    assert wait_for(lambda: (out / "r" / "hf-first-r0.json").exists(), 120), p.communicate()[1][-2000:]
    time.sleep(2)  # inside the second scenario
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    results = {r.scenario: r for r in valid_results(out, checked)}
    assert results["first"].status == "ok" and results["first"].check.passed
    assert results["second"].status == "interrupted" and results["second"].metrics is None
    assert "third" not in results


@pytest.mark.skipif(sys.platform != "linux", reason="address-space limit")
def test_out_of_memory_is_recorded_and_the_next_scenario_runs(tmp_path, checked):
    # A StaticCache of 16,384 rows x 512 positions x 1 KiB per token needs ~8 GiB: over a 6 GiB cap.
    s = suite(
        tmp_path,
        """
        name: oom
        model: synthetic:tiny-llama
        workloads:
          wide: {requests: 16384, prompt_len: 1, output_len: 1}
          small: {requests: 4, prompt_len: 8, output_len: 4}
        scenarios:
          - {name: huge-static, stack: hf, mode: static-cache, batch_size: 16384, workload: wide, warmup_requests: 0}
          - {name: after, stack: hf, mode: padded, batch_size: 4, workload: small, warmup_requests: 0}
    """,
    )
    cap = 6 * 2**30

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    p = start_cli("run", "--stack", "hf", "--suite", s, "--out", tmp_path / "out", "--run-id", "r", preexec_fn=limit)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 1, err[-2000:]
    results = {r.scenario: r for r in valid_results(tmp_path / "out", checked)}
    assert results["huge-static"].status == "failed" and "memory" in results["huge-static"].error.lower()
    assert results["after"].status == "ok"
    report = run_cli("collect", tmp_path / "out", "--out", tmp_path / "report")
    assert report.returncode == 0
    assert "huge-static failed" in (tmp_path / "report" / "report.md").read_text()  # the limit is a finding


@pytest.mark.skipif(not has("vllm"), reason="vLLM is not installed")
def test_engine_core_killed_ends_with_a_clear_error(tmp_path, checked):
    s = suite(
        tmp_path,
        """
        name: kill
        model: synthetic:tiny-llama
        workloads:
          w: {requests: 8192, prompt_len: 32, output_len: 200}
        scenarios:
          - {name: victim, stack: vllm, workload: w, warmup_requests: 0, enforce_eager: true, kv_cache_space_gib: 1,
             max_model_len: 256, timeout_s: 240}
    """,
    )
    out = tmp_path / "out"
    p = start_cli("run", "--stack", "vllm", "--suite", s, "--out", out, "--run-id", "r")
    log = out / "r" / "vllm.log"
    assert wait_for(lambda: log.exists() and "Loading safetensors" in log.read_text(errors="ignore"), 180)
    # Past the engine's start (about 10 s after loading on 2 cores), well inside the run: 1.6 M output
    # tokens take over a minute at the ~25k tok/s a tiny model reaches there.
    time.sleep(15)
    for child in psutil.Process(p.pid).children(recursive=True):
        child.kill()
    _, err = p.communicate(timeout=180)  # a clear end, not a hang
    assert p.returncode == 1, err[-2000:]
    (r,) = valid_results(out, checked)
    assert r.status == "failed" and r.metrics is None and r.error


def tensor_parallel_suite(tmp_path, first: str, then: str) -> Path:
    """A two-rank HF scenario of several minutes (`first`: its name and knobs), then a quick one (`then`)."""
    return suite(
        tmp_path,
        f"""
        name: tp
        model: synthetic:tiny-llama
        workloads:
          long: {{requests: 2000, prompt_len: 32, output_len: 64}}
          quick: {{requests: 4, prompt_len: 8, output_len: 4}}
        scenarios:
          - {{{first}, stack: hf, mode: padded, batch_size: 4, workload: long, tensor_parallel_size: 2,
             warmup_requests: 0}}
          - {{{then}, stack: hf, mode: padded, workload: quick}}
    """,
    )


def test_a_tensor_parallel_rank_killed_fails_its_scenario_and_the_run_goes_on(tmp_path, checked):
    s = tensor_parallel_suite(tmp_path, "name: victim, timeout_s: 300", "name: after, batch_size: 4")
    out = tmp_path / "out"
    p = start_cli("run", "--stack", "hf", "--suite", s, "--device", "cpu", "--out", out, "--run-id", "r")

    def follower():
        for child in psutil.Process(p.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "bench.stacks.hf.tensor_parallel" in " ".join(child.cmdline()):
                    return child
        return None

    log = out / "r" / "hf.log"
    loaded = lambda: log.exists() and log.read_text(errors="ignore").count("Loading weights: 100%") >= 2  # noqa: E731
    assert wait_for(lambda: follower() is not None and loaded(), 120)
    time.sleep(3)  # both ranks loaded: inside the warm-up or a run of several minutes
    follower().kill()
    _, err = p.communicate(timeout=180)  # a clear end, not a wait in a collective
    assert p.returncode == 1, err[-2000:]
    results = {r.scenario: r for r in valid_results(out, checked)}
    victim, after = results["victim"], results["after"]
    assert victim.status == "failed" and victim.metrics is None
    assert "RankDied" in victim.error and "rank 1" in victim.error, victim.error
    assert after.status == "ok"  # the next scenario ran, in one process again


def test_a_tensor_parallel_scenario_past_its_timeout_fails_and_the_ranks_start_again(tmp_path, checked):
    # Rank 0 leaves a generate() part way while rank 1 waits inside it: rank 1 is killed, not sent a stop it
    # would take for its next step, and the next tensor-parallel scenario forms a new group.
    s = tensor_parallel_suite(
        tmp_path, "name: slow, timeout_s: 15", "name: again, batch_size: 2, tensor_parallel_size: 2"
    )
    out = tmp_path / "out"
    r = run_cli("run", "--stack", "hf", "--suite", s, "--device", "cpu", "--out", out, "--run-id", "r", timeout=240)
    assert r.returncode == 1, r.stderr[-2000:]
    results = {x.scenario: x for x in valid_results(out, checked)}
    assert results["slow"].status == "failed" and "timeout of 15 s" in results["slow"].error
    assert results["again"].status == "ok" and results["again"].kv.ranks == 2


@contextlib.contextmanager
def mounted_tmpfs(path: Path, options: str):
    """A small filesystem at `path` (mount options such as "size=48k" or "ro,size=1m"), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.skipif(not ROOT_USER, reason="needs root to mount a small filesystem")
def test_disk_full_stops_with_a_clear_error(tmp_path, checked):
    s = fake_suite(tmp_path, "a", requests=50, output_len=20)
    with mounted_tmpfs(tmp_path / "disk", "size=48k") as disk:
        r = run_cli("run", "--stack", "fake", "--suite", s, "--out", disk, "--run-id", "r", "--repeats", "40")
        assert r.returncode == 3, r.stderr[-2000:]
        assert "cannot write the result" in r.stderr and "intact" in r.stderr and "Traceback" not in r.stderr
        written = valid_results(disk, checked)
        assert 0 < len(written) < 40


@pytest.mark.skipif(not ROOT_USER, reason="needs root to mount a read-only filesystem")
def test_read_only_results_dir(tmp_path, checked):
    # A filesystem can't be remounted read-only under an open log, so this one is read-only from the start.
    s = fake_suite(tmp_path, "a")
    with mounted_tmpfs(tmp_path / "disk", "ro,size=1m") as disk:
        r = run_cli("run", "--stack", "fake", "--suite", s, "--out", disk, "--run-id", "r")
        assert r.returncode == 2 and "cannot write into" in r.stderr and "Read-only" in r.stderr, r.stderr[-2000:]
        assert "Traceback" not in r.stderr


def test_two_runs_into_one_directory(tmp_path, checked):
    s = fake_suite(tmp_path, "a", "b", requests=20, output_len=50)
    out = tmp_path / "out"
    procs = [
        start_cli("run", "--stack", "fake", "--suite", s, "--out", out, "--run-id", rid, "--repeats", "3")
        for rid in ("one", "two")
    ]
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    results = valid_results(out, checked)
    assert sorted((r.run_id, r.scenario, r.repeat) for r in results) == sorted(
        (rid, sc, i) for rid in ("one", "two") for sc in ("a", "b") for i in range(3)
    )
    r = run_cli("collect", out, "--out", tmp_path / "report")  # all 12 seen, none a measurement: no report
    assert r.returncode == 2 and "fake runner: not a measurement" in r.stderr and "and 11 more" in r.stderr


def test_no_token_in_results_or_logs(tmp_path, checked):
    token = "hf_PagedBenchFakeToken1234567890"
    s = suite(
        tmp_path,
        """
        name: tok
        model: synthetic:tiny-llama
        workloads:
          w: {requests: 4, prompt_len: 8, output_len: 4}
        scenarios:
          - {name: a, stack: hf, mode: padded, batch_size: 2, workload: w, warmup_requests: 0}
    """,
    )
    r = run_cli(
        "run",
        "--stack",
        "hf",
        "--suite",
        s,
        "--out",
        tmp_path / "out",
        "--run-id",
        "r",
        env={"HF_TOKEN": token, "HUGGING_FACE_HUB_TOKEN": token},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    valid_results(tmp_path / "out", checked)
    for f in (tmp_path / "out").rglob("*"):
        if f.is_file():
            assert token not in f.read_text(errors="ignore"), f
    assert token not in r.stdout + r.stderr


def test_result_files_are_data_only(tmp_path, checked):
    """A result file is parsed as JSON and validated; nothing in it is executed or unpickled."""
    evil = tmp_path / "evil.json"
    evil.write_text('{"schema_version": 1, "__reduce__": "os.system", "run_id": "x"}')
    with pytest.raises(Exception) as e:
        load_result(evil)
    assert "does not match the schema" in str(e.value)
    checked.append(str(evil))


def test_ctrl_c_while_building_the_model_exits_130(tmp_path, checked):
    """Interrupted before any scenario (a 1.2B synthetic model takes a while to build on a CPU): 130 and one
    line, as documented, not click's 'Aborted!' and exit 1; no half-built model left in the cache."""
    cache = tmp_path / "cache"
    p = start_cli(
        "prepare",
        "--suite",
        "smoke",
        "--model",
        "synthetic:llama-1b",
        env={**os.environ, "PAGEDBENCH_CACHE": str(cache)},
    )
    assert wait_for(lambda: any((cache / "models").glob(".llama-1b-*")), 120), p.communicate()[1][-2000:]
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    checked.append("ctrl-c during model build")
    assert p.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "Interrupted." and "Aborted!" not in err and "Traceback" not in err
    assert not list((cache / "models").iterdir())


def _results_for_a_report(root: Path, n: int) -> Path:
    from bench.results import write_result
    from tests.unit.test_results import ok_result

    for i in range(n):
        write_result(ok_result(scenario=f"s{i}"), root)
    return root


@pytest.mark.skipif(not ROOT_USER, reason="needs root to mount a small filesystem")
def test_report_on_a_full_disk_is_exit_3_and_no_truncated_file(tmp_path, checked):
    res = _results_for_a_report(tmp_path / "res", 3)
    with mounted_tmpfs(tmp_path / "disk", "size=12k") as disk:
        r = run_cli("collect", res, "--out", disk / "report")
        checked.append("report on a full disk")
        assert r.returncode == 3, (r.returncode, r.stderr[-2000:])
        assert "cannot write the report" in r.stderr and "Traceback" not in r.stderr
        complete = {  # what a whole file of each kind looks like
            "report.md": lambda text: "## Problems" in text and text.endswith("\n"),
            "results.csv": lambda text: len(text.splitlines()) == 4,
            "report.html": lambda text: text.endswith("</html>"),
        }
        for name, whole in complete.items():
            f = disk / "report" / name
            assert not f.exists() or whole(f.read_text()), f"{name} was left part-written"
        assert not list((disk / "report").glob("*.tmp")) and not list((disk / "report").glob(".*.tmp"))


def test_crosscheck_output_checked_before_measuring(tmp_path, checked):
    (tmp_path / "out.json").mkdir()
    t = time.monotonic()
    r = run_cli(
        "crosscheck", "--stack", "hf", "--suite", "smoke", "--scenario", "hf-padded-b4", "--out", tmp_path / "out.json"
    )
    checked.append("crosscheck --out a directory")
    assert r.returncode == 2 and "is a directory" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert time.monotonic() - t < 60  # refused before the engine loaded


def test_two_collects_into_one_directory_leave_one_consistent_report(tmp_path, checked):
    a = _results_for_a_report(tmp_path / "a", 2)
    b = _results_for_a_report(tmp_path / "b", 5)
    out = tmp_path / "report"
    for _ in range(3):
        procs = [start_cli("collect", src, "--out", out) for src in (a, b, a, b)]
        for p in procs:
            p.communicate(timeout=120)
            assert p.returncode == 0
        md = (out / "report.md").read_text()
        html = (out / "report.html").read_text()
        rows = (out / "results.csv").read_text().strip().splitlines()
        n = int(md.split(" result files")[0].rsplit(" ", 1)[1])
        assert f"from {n} result files" in html and len(rows) == n + 1, (n, len(rows))
    checked.append("two collects into one directory")


@pytest.mark.parametrize(
    "presses, gap_s, second",
    [(1, 0, ""), (2, 0.005, ""), (3, 0.04, ""), (1, 0, ", tensor_parallel_size: 2")],
    ids=["ctrl-c", "ctrl-c-twice", "ctrl-c-thrice-40ms", "ctrl-c-tp"],
)
def test_ctrl_c_from_a_terminal_is_130_without_tracebacks(tmp_path, checked, presses, gap_s, second):
    """A terminal sends SIGINT to the whole process group: the monitor child (and a tensor-parallel rank)
    must not print a traceback, and more presses a few or tens of milliseconds later (while the scenario in
    flight is recorded, the engine closed, the process exiting) must not turn 130 into 1 or a death by
    signal."""
    out = tmp_path / "out"
    p = start_cli(
        "run",
        "--stack",
        "hf",
        "--suite",
        interruptible_suite(tmp_path, second),
        "--out",
        out,
        "--run-id",
        "r",
        start_new_session=True,
    )
    assert wait_for(lambda: (out / "r" / "hf-first-r0.json").exists(), 120), p.communicate()[1][-2000:]
    time.sleep(2)  # inside the second scenario, with the monitor running
    for _ in range(presses):
        os.killpg(p.pid, signal.SIGINT)
        time.sleep(gap_s)
    _, err = p.communicate(timeout=120)
    checked.append(f"ctrl-c x{presses}")
    assert p.returncode == 130, (p.returncode, err[-2000:])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "Aborted!" not in err, err[-2000:]
    assert "Traceback" not in (out / "r" / "hf.log").read_text()
    results = {r.scenario: r for r in valid_results(out, checked)}
    # third shares first's engine and runs before second when second has an engine of its own
    assert results["second"].status == "interrupted" and ("third" in results) == bool(second)


def test_a_killed_runs_monitor_file_is_removed_by_the_next_run(tmp_path, checked):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp / f"pagedbench-monitor-{dead.pid}-abc.jsonl"
    stale.write_text('{"t": 1}\n')
    mine = tmp / f"pagedbench-monitor-{os.getpid()}-abc.jsonl"  # a live run's file stays
    mine.write_text('{"t": 1}\n')
    s = fake_suite(tmp_path, "a")
    r = run_cli("run", "--stack", "fake", "--suite", s, "--out", tmp_path / "out", env={"TMPDIR": str(tmp)})
    checked.append("stale monitor file")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not stale.exists() and mine.exists()
    assert [p.name for p in tmp.glob("pagedbench-monitor-*")] == [mine.name]


def test_a_figure_that_is_no_number_fails_the_scenario_not_the_run(tmp_path, checked, monkeypatch):
    """A measurement giving NaN (a zero-length clock, a broken reading) is a failed scenario with its reason,
    and the run goes on; it is never written as a result with figures."""
    import bench.harness as harness
    from bench.suite import load_suite

    real = harness.compute_metrics

    def nan_once(w, out):
        m = real(w, out)
        if not getattr(nan_once, "done", False):
            nan_once.done = True
            return m.model_validate(m.model_dump() | {"elapsed_s": float("nan")})
        return m

    monkeypatch.setattr(harness, "compute_metrics", nan_once)
    s = fake_suite(tmp_path, "a", "b")
    summary = harness.run_suite(
        load_suite(str(s)), harness.RunOptions(stack="fake", out=tmp_path / "out", run_id="r"), progress=lambda m: None
    )
    checked.append("NaN figure")
    by_name = {r.scenario: r for r in summary.results}
    assert by_name["a"].status == "failed"
    assert "FigureInvalid: elapsed_s: Input should be a finite number" in by_name["a"].error
    assert by_name["b"].status == "ok" and summary.exit_code == 1


SERVE_SUITE = """
name: serve-faults
model: synthetic:tiny-llama
workloads:
  w: {requests: 6, seed: 3, prompt_len: 16, output_len: 24}
scenarios:
  - {name: hf-serve, stack: hf, workload: w}
"""


def _serve(tmp_path, **kw):
    from tests.conftest import free_port

    s = suite(tmp_path, SERVE_SUITE)
    out = tmp_path / "out"
    p = start_cli("serve", "--stack", "hf", "--suite", s, "--device", "cpu", "--port", free_port(), "--out", out,
                  "--run-id", "r", "--rate", "50", "--concurrency", "1", "--concurrency", "2",
                  "--concurrency", "3", **kw)  # fmt: skip
    lines: list[str] = []

    def read():
        for line in p.stderr:
            lines.append(line)

    import threading

    threading.Thread(target=read, daemon=True).start()
    return p, out, lines


def _server_processes(before: set[int]) -> list[str]:
    from tests.conftest import running

    return running("transformers serve", "cli.transformers", among=set(psutil.pids()) - before)


@pytest.mark.skipif(not has("accelerate"), reason="transformers serve places the model through accelerate")
def test_ctrl_c_during_a_serving_sweep_keeps_the_loads_that_finished(tmp_path, checked):
    before = set(psutil.pids())
    p, out, lines = _serve(tmp_path, start_new_session=True)
    assert wait_for(lambda: any(x.startswith("poisson 50 req/s: ") for x in lines), 300), "".join(lines)[-2000:]
    os.killpg(p.pid, signal.SIGINT)
    os.killpg(p.pid, signal.SIGINT)  # twice, as a terminal's double press
    p.wait(timeout=120)
    err = "".join(lines)
    checked.append("ctrl-c during serve")
    assert p.returncode == 130, (p.returncode, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    from bench.results.serving import ServingResult

    result = ServingResult.model_validate_json((out / "r" / "serving-hf-hf-serve.json").read_text())
    assert result.status == "interrupted" and "interrupted after" in result.error
    assert result.loads and result.loads[0].load == "poisson 50 req/s" and result.loads[0].completed == 6
    assert wait_for(lambda: not _server_processes(before), 30), _server_processes(before)


@pytest.mark.skipif(not has("accelerate"), reason="transformers serve places the model through accelerate")
def test_a_killed_serve_takes_its_server_with_it(tmp_path, checked):
    """SIGKILL (as the OOM killer sends) leaves no handler to run: the watchdog stops the server's group."""
    before = set(psutil.pids())
    p, out, lines = _serve(tmp_path)
    assert wait_for(lambda: any(x.startswith("poisson 50 req/s: ") for x in lines), 300), "".join(lines)[-2000:]
    assert _server_processes(before)
    p.kill()
    p.wait(timeout=30)
    checked.append("serve killed")
    assert wait_for(lambda: not _server_processes(before), 60), _server_processes(before)
