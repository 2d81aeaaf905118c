"""The cross-check runs both loops on the real engines (CPU) and reports their agreement. Agreement itself
is a GPU benchmark figure (docs/results), not asserted here: CPU timings of sub-second runs are noise."""

import json
from pathlib import Path

import pytest

from bench.results import load_result
from tests.conftest import has, run_cli

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stack,scenario", [("hf", "hf-padded-b4"), ("vllm", "vllm")])
def test_crosscheck_reports_both_loops(stack, scenario, tmp_path):
    if stack == "vllm" and not has("vllm"):
        pytest.skip("vLLM is not installed")
    out, results = tmp_path / "cc.json", tmp_path / "results"
    r = run_cli(
        "crosscheck", "--stack", stack, "--suite", "smoke", "--scenario", scenario, "--repeats", "2",
        "--out", out, "--results", results, "--run-id", "cc",
    )  # fmt: skip
    assert r.returncode in (0, 1, 3), r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tokens_match"] is True and len(report["repeats"]) == 2
    arms = ("plain", "pagedbench", "pagedbench_no_sampler")
    for row in report["repeats"]:
        assert sorted(row["order"]) == sorted(arms)
        for arm in arms:
            assert row[f"{arm}_tokens"] == report["expected_tokens"] and row[f"{arm}_tokens_per_s"] > 0
        with_sampler, without = row["pagedbench_tokens_per_s"], row["pagedbench_no_sampler_tokens_per_s"]
        assert row["sampler_overhead"] == pytest.approx(1 - with_sampler / without)
    # Rotated: the arm that ran first in repeat 0 does not run first in repeat 1.
    assert report["repeats"][0]["order"][0] != report["repeats"][1]["order"][0]
    assert report["pagedbench_cv"] >= 0 and "sampler_overhead_spread" in report
    expected_rc = {"agrees": 0, "disagrees": 1, "inconclusive": 3}[report["verdict"]]
    assert r.returncode == expected_rc and report["agrees"] == (report["verdict"] == "agrees")
    assert "sampler every" in r.stdout and "CV over 2 repeats" in r.stdout
    # PagedBench's arms are ordinary results: one per repeat, the sampler-off arm in its own run.
    on = [load_result(p) for p in sorted((results / "cc").glob("*.json"))]
    off = [load_result(p) for p in sorted((results / "cc-no-sampler").glob("*.json"))]
    assert [r.repeat for r in on] == [r.repeat for r in off] == [0, 1]
    assert all(r.config.sampler for r in on) and not any(r.config.sampler for r in off)
    assert [r.metrics.output_tokens_per_s for r in on] == pytest.approx(
        [row["pagedbench_tokens_per_s"] for row in report["repeats"]]
    )
    assert sorted(report["results"]) == sorted(str(p) for p in results.rglob("*.json"))
    # A second cross-check into the same run id is refused: results are never overwritten.
    again = run_cli("crosscheck", "--stack", stack, "--suite", "smoke", "--scenario", scenario,
                    "--results", results, "--run-id", "cc")  # fmt: skip
    assert again.returncode == 2 and "already holds results" in again.stderr


def test_crosscheck_refuses_a_capacity_scenario():
    r = run_cli("crosscheck", "--stack", "hf", "--suite", "capacity", "--scenario", "hf-max-batch")
    assert r.returncode == 2 and "fixed-batch" in r.stderr


def test_a_failed_arm_is_a_clear_error(tmp_path):
    """A PagedBench arm that fails (here: its scenario's timeout) ends the cross-check with exit 1 and one
    line naming the scenario and the error, not a traceback."""
    suite = (Path(__file__).resolve().parents[2] / "bench" / "suites" / "smoke.yaml").read_text()
    suite = suite.replace(
        "batch_size: 4, workload: mixed, warmup_requests: 1}",
        "batch_size: 4, workload: mixed, warmup_requests: 1, timeout_s: 0.001}",
        1,
    )
    path = tmp_path / "s.yaml"
    path.write_text(suite)
    r = run_cli("crosscheck", "--stack", "hf", "--suite", path, "--scenario", "hf-padded-b4", "--repeats", "1",
                "--out", tmp_path / "cc.json")  # fmt: skip
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Error: PagedBench's run of hf-padded-b4 failed: ScenarioTimeout" in r.stderr
    assert "Traceback" not in r.stderr
