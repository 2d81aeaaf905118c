"""vLLM's gauges are read every sampling interval in the process that runs `LLM.generate`: the targeted
read of four collectors must give what vLLM's public snapshot (`LLM.get_metrics()`) gives."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import has

pytestmark = pytest.mark.integration

SCRIPT = """
import json, sys, threading, time
from pathlib import Path

if __name__ == "__main__":
    from bench.suite import load_suite
    from bench.context import RunContext, RunOptions
    from bench.stacks import load_runner
    from bench.stacks.vllm.runner import _GAUGES

    suite = load_suite("smoke")
    s = next(x for x in suite.scenarios if x.stack == "vllm")
    ctx = RunContext(suite, RunOptions(stack="vllm", out=Path(sys.argv[1])), Path("g"))
    runner = load_runner("vllm")(ctx.prepare(s).model, s)
    runner.load()
    w = ctx.workload(s.workload)

    def snapshot():
        values = {}
        for m in runner.llm.get_metrics():
            key = _GAUGES.get(m.name)
            if key is not None and hasattr(m, "value"):
                values[key] = values.get(key, 0.0) + float(m.value)
        return values

    pairs, done = [], threading.Event()

    def poll():
        while not done.is_set():
            pairs.append((runner.read_gauges(), snapshot()))
            time.sleep(0.02)

    thread = threading.Thread(target=poll)
    thread.start()
    runner.run(w.requests, w.spec)
    done.set()
    thread.join()
    at_rest = (runner.read_gauges(), snapshot())
    targeted_path = runner.gauge_collectors is not None
    runner.close()
    print(json.dumps({"pairs": pairs, "at_rest": at_rest, "targeted": targeted_path}))
"""


def test_targeted_gauges_match_the_public_snapshot(tmp_path):
    if not has("vllm"):
        pytest.skip("vLLM is not installed")
    script = tmp_path / "gauges.py"
    script.write_text(SCRIPT)
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], cwd=root, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert data["targeted"] is True
    targeted, snapshot = data["at_rest"]
    assert targeted == snapshot and set(targeted) == {"kv_usage", "running", "waiting", "preemptions"}
    # Polled during the run, both reads saw requests running (the two reads are moments apart).
    assert max(a["running"] for a, _ in data["pairs"]) > 0 and max(b["running"] for _, b in data["pairs"]) > 0
