"""The cross-check runs both loops on the real engines (CPU) and reports their agreement. Agreement itself
is a GPU benchmark figure (docs/results), not asserted here: CPU timings of sub-second runs are noise."""

import json

import pytest

from tests.conftest import has, run_cli

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stack,scenario", [("hf", "hf-padded-b4"), ("vllm", "vllm")])
def test_crosscheck_reports_both_loops(stack, scenario, tmp_path):
    if stack == "vllm" and not has("vllm"):
        pytest.skip("vLLM is not installed")
    out = tmp_path / "cc.json"
    r = run_cli(
        "crosscheck", "--stack", stack, "--suite", "smoke", "--scenario", scenario, "--repeats", "2", "--out", out
    )
    assert r.returncode in (0, 1), r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tokens_match"] is True and len(report["repeats"]) == 2
    for row in report["repeats"]:
        assert row["plain_tokens"] == row["pagedbench_tokens"] == report["expected_tokens"]
        assert row["plain_tokens_per_s"] > 0 and row["pagedbench_tokens_per_s"] > 0
    assert (r.returncode == 0) == (report["agrees"] and report["tokens_match"])


def test_crosscheck_refuses_a_capacity_scenario():
    r = run_cli("crosscheck", "--stack", "hf", "--suite", "capacity", "--scenario", "hf-max-batch")
    assert r.returncode == 2 and "fixed-batch" in r.stderr
