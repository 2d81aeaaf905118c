"""`pagedbench compare` as a CI gate: unambiguous thresholds, repeats compared as distributions, runs too
short to trust flagged instead of failed, and an exit code that agrees with the printed verdict."""

from tests.conftest import run_cli
from tests.unit.test_collect_repeats import repeated


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


def test_runs_too_short_to_trust_are_flagged_not_failed(tmp_path):
    repeated(tmp_path / "base", [2.0])
    repeated(tmp_path / "cand", [2.4])  # 20 % slower, but a 2 s run
    out = compare(tmp_path / "base", tmp_path / "cand", "--max-regression", "5%")
    assert out.returncode == 0 and "too short" in out.stdout and "REGRESSION" not in out.stdout
    assert "runs under 30 s" in out.stdout.strip().splitlines()[-1]
    gate = compare(tmp_path / "base", tmp_path / "cand", "--max-regression", "5%", "--min-run-s", "0")
    assert gate.returncode == 1 and "REGRESSION" in gate.stdout
