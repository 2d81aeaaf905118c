"""scripts/vllm_variance.py on the real vLLM engine (CPU): per-run steps, token counts and the GC hook's
figures from the engine-core process. Its timings are GPU evidence (docs/results), not asserted here."""

import json

import pytest

from tests.conftest import has, run_script

pytestmark = pytest.mark.integration


def test_variance_probe_records_each_run(tmp_path):
    if not has("vllm"):
        pytest.skip("vLLM is not installed")
    out = tmp_path / "variance.json"
    r = run_script("vllm_variance", "--suite", "smoke", "--scenario", "vllm", "--runs", 2, "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [run["run"] for run in report["runs"]] == [0, 1]
    for run in report["runs"]:
        assert run["tokens"] > 0 and run["tokens_per_s"] == pytest.approx(run["tokens"] / run["elapsed_s"])
        # The engine's own counter agrees with the tokens returned.
        assert run["engine"]["vllm:generation_tokens"] == run["tokens"] and run["engine"]["steps"] >= 1
        assert run["gpu_busy_s"] is None  # no NVIDIA device here: not a made-up zero
    # The hook reached the spawned engine core, whose process title vLLM sets.
    titles = {g["comm"] for g in report["runs"][-1]["gc"].values()}
    assert any(t.startswith("VLLM::EngineCor") for t in titles), titles
    assert "run 1:" in r.stdout
