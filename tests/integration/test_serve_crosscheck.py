"""The cross-check against `vllm bench serve` runs end to end on the real vLLM server (CPU): both clients
send every request of the same workload and their figures come out side by side. (Whether they agree is
for a GPU: on a CPU a run of tenths of a second varies more than the tools could differ.)"""

import json
import sys
import textwrap

import pytest

from tests.conftest import ROOT, free_port, has

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (has("vllm") and has("pandas")), reason="needs vLLM and pandas (vllm bench's custom data)"),
]


def test_both_clients_answer_every_request_and_the_figures_sit_side_by_side(tmp_path):
    import subprocess

    suite = tmp_path / "xc.yaml"
    suite.write_text(
        textwrap.dedent("""
        name: xc
        model: synthetic:tiny-llama
        workloads:
          w: {requests: 24, seed: 2, prompt_len: {dist: uniform, min: 20, max: 60}, output_len: 12}
        scenarios:
          - {name: v, stack: vllm, workload: w, enforce_eager: true, kv_cache_space_gib: 1, max_model_len: 256}
    """)
    )
    port = free_port()
    out = tmp_path / "xc.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "serve_crosscheck.py"), "--suite", str(suite), "--scenario", "v",
         "--rate", "20", "--port", str(port), "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    c = json.loads(out.read_text())
    mine = c["pagedbench"]
    assert mine["completed"] == 24 and mine["failed"] == 0 and c["completed_by_vllm"] == 24, mine["errors"]
    figures = {row["figure"]: row for row in c["rows"]}
    assert set(figures) >= {"mean TTFT, ms", "mean TPOT, ms", "output throughput, tok/s"}
    for row in figures.values():
        assert row["pagedbench"] > 0 and row["vllm_bench_serve"] is not None
