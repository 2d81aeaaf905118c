"""`pagedbench compare` as a CI gate: unambiguous thresholds, repeats compared as distributions, and a gate
that fails closed: every baseline scenario found, readable, ok and comparable in the candidate, or exit 1
with the reason (`--allow-missing` opts out, still listing them); an exit code that agrees with the
printed verdict."""

import json
import os
import shutil

import pytest

from bench.results import write_result
from tests.conftest import run_cli
from tests.unit.test_collect_repeats import repeated
from tests.unit.test_results import ok_result


def compare(base, cand, *args):
    return run_cli("compare", base, cand, *args)


def test_a_bare_number_is_refused_not_read_as_hundreds_of_percent(tmp_path):
    repeated(tmp_path / "a", [40.0])
    for bare in ("5", "0.05", "nan%", "-1%"):
        out = compare(tmp_path / "a", tmp_path / "a", "--max-regression", bare)
        assert out.returncode == 2, (bare, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_a_clear_regression_of_long_runs_fails(tmp_path):
    repeated(tmp_path / "base", [40.0])
    repeated(tmp_path / "cand", [44.0])  # the same tokens in 10 % more time
    out = compare(tmp_path / "base", tmp_path / "cand", "--max-regression", "5%")
    assert out.returncode == 1 and "REGRESSION" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("FAIL: 2 regression(s)")  # tok/s and req/s


def test_repeats_are_compared_as_distributions(tmp_path):
    # Means 8 % apart, but the repeats spread by far more: not a regression the data can show.
    repeated(tmp_path / "base", [40.0, 30.0, 50.0])
    repeated(tmp_path / "cand", [43.2, 32.4, 54.0])
    noisy = compare(tmp_path / "base", tmp_path / "cand", "--max-regression", "5%")
    assert noisy.returncode == 0, noisy.stdout
    assert "(n=3)" in noisy.stdout and "within noise" in noisy.stdout and "±" in noisy.stdout
    assert noisy.stdout.strip().splitlines()[-1].startswith("PASS: 0 regression(s)")
    # Tight repeats, 10 % apart: a regression beyond the noise.
    repeated(tmp_path / "b2", [40.0, 40.2, 39.8])
    repeated(tmp_path / "c2", [44.0, 44.2, 43.8])
    tight = compare(tmp_path / "b2", tmp_path / "c2", "--max-regression", "5%")
    assert tight.returncode == 1 and "REGRESSION" in tight.stdout


def test_a_change_on_a_run_too_short_to_judge_fails_closed_unless_allowed(tmp_path):
    repeated(tmp_path / "base", [2.0])
    repeated(tmp_path / "cand", [2.4])  # 20 % slower, but a 2 s run
    out = compare(tmp_path / "base", tmp_path / "cand", "--max-regression", "5%")
    assert out.returncode == 1 and "too short to judge" in out.stdout and "REGRESSION" not in out.stdout
    assert "2 not compared (fails the gate)" in out.stdout.strip().splitlines()[-1]
    allowed = compare(tmp_path / "base", tmp_path / "cand", "--allow-missing")
    assert allowed.returncode == 0 and "NOT COMPARED: hf a output_tokens_per_s" in allowed.stdout
    assert allowed.stdout.strip().splitlines()[-1].startswith("PASS") and "--allow-missing" in allowed.stdout
    gate = compare(tmp_path / "base", tmp_path / "cand", "--max-regression", "5%", "--min-run-s", "0")
    assert gate.returncode == 1 and "REGRESSION" in gate.stdout
    same = compare(tmp_path / "base", tmp_path / "base")  # short, but nothing worse: nothing to judge
    assert same.returncode == 0, same.stdout


def two_scenarios(root, elapsed=40.0):
    for name in ("a", "b"):
        repeated(root, [elapsed], scenario=name)
    return root


def breakers():
    """Ways a candidate loses scenario b, and what the gate must then say of it."""

    def failed(d):
        (d / "hf-b-r0.json").unlink()
        r = ok_result(scenario="b")
        bad = r.model_copy(update={"status": "failed", "error": "TimeoutError: past 1800 s", "metrics": None})
        write_result(bad, d)

    def truncated(d):
        f = d / "hf-b-r0.json"
        f.write_text(f.read_text()[:200])

    def corrupt(d):
        (d / "hf-b-r0.json").write_bytes(b"\xff\xfe not json")

    def other_workload(d):
        f = d / "hf-b-r0.json"
        data = json.loads(f.read_text())
        data["workload"]["hash"] = "other"
        f.write_text(json.dumps(data))

    return {
        "missing": (lambda d: (d / "hf-b-r0.json").unlink(), "missing from the candidate"),
        "failed": (failed, "failed in the candidate: TimeoutError: past 1800 s"),
        "truncated": (truncated, "not valid JSON"),
        "corrupt": (corrupt, "not UTF-8"),
        "other workload": (other_workload, "a different workload 'h' vs 'other'"),
    }


@pytest.mark.parametrize("how", list(breakers()))
def test_a_baseline_scenario_the_candidate_lacks_fails_the_gate_with_its_reason(tmp_path, how):
    base = two_scenarios(tmp_path / "base")
    cand = tmp_path / "cand"
    shutil.copytree(base, cand)
    breaker, reason = breakers()[how]
    breaker(cand)
    out = compare(base, cand)
    line = next((x for x in out.stdout.splitlines() if x.startswith("NOT COMPARED: hf b")), "")
    assert out.returncode == 1 and reason in line, (how, out.stdout, out.stderr)
    assert out.stdout.strip().splitlines()[-1].startswith("FAIL: 0 regression(s)") and "Traceback" not in out.stderr
    allowed = compare(base, cand, "--allow-missing")
    assert allowed.returncode == 0 and reason in allowed.stdout


def test_a_candidate_behind_symlinks_is_read_and_a_new_scenario_is_named_not_gated(tmp_path):
    base = two_scenarios(tmp_path / "base")
    real = tmp_path / "elsewhere" / "run1"
    shutil.copytree(base, real)
    repeated(real, [40.0], scenario="c")
    cand = tmp_path / "cand"
    cand.mkdir()
    os.symlink(real, cand / "run1")
    os.symlink(cand, cand / "run1" / "loop")  # a link back up: walked once
    out = compare(base, cand)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "new in the candidate (not gated): hf c" in out.stdout


def test_an_unreadable_directory_is_a_problem_and_fails_the_gate(tmp_path, monkeypatch):
    """A directory that cannot be listed (mode 000; as root, whom modes do not stop, a listing refused
    as the kernel would refuse it) is named as a problem, never silently left out."""
    from click.testing import CliRunner

    import bench.results.store as store
    from bench.cli import main

    base = two_scenarios(tmp_path / "base")
    cand = tmp_path / "cand"
    shutil.copytree(base, cand / "run")
    locked = cand / "run"
    if os.geteuid() == 0:
        real = os.scandir

        def refuse(path="."):
            if os.fspath(path) == os.fspath(locked):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path)

        monkeypatch.setattr(store.os, "scandir", refuse)
    else:
        locked.chmod(0)
    try:
        report = CliRunner().invoke(main, ["collect", str(cand), "--out", str(tmp_path / "report"), "--no-plots"])
        assert "run: cannot read the directory: Permission denied" in report.output, report.output
        assert report.exit_code == 2 and "no report written" in report.output  # nothing else was readable
        out = CliRunner().invoke(main, ["compare", str(base), str(cand)])
        assert out.exit_code == 1 and "cannot read the directory" in out.output, out.output
    finally:
        locked.chmod(0o755)


def test_what_the_baseline_did_not_measure_is_named_and_gates_nothing(tmp_path):
    base = two_scenarios(tmp_path / "base")
    (base / "hf-b-r0.json").write_text("{truncated")
    cand = two_scenarios(tmp_path / "cand")
    out = compare(base, cand)
    assert out.returncode == 0, out.stdout
    assert "not in the baseline's figures (not gated): baseline hf-b-r0.json: not valid JSON" in out.stdout
    failed = ok_result(scenario="c").model_copy(update={"status": "failed", "error": "TimeoutError", "metrics": None})
    for side in (base, cand):
        write_result(failed, side)
    again = compare(base, cand)  # failed on both sides: nothing the baseline measured is lost
    assert again.returncode == 0 and "hf-c-r0.json: failed: TimeoutError" in again.stdout, again.stdout
