"""What the sharing tests (n samples, beams) share: one run of a suite on each installed stack, and the
report's Sharing table with the KV tokens its outputs would need apart."""

import tempfile
import textwrap
from pathlib import Path

from bench.results import load_result
from tests.conftest import has, run_cli


def run_stacks(root, suite_text: str):
    """The suite run on HF, and on vLLM where it is installed; results under root/<stack>/."""
    suite = root / "suite.yaml"
    suite.write_text(textwrap.dedent(suite_text))
    probes = lambda: set(Path(tempfile.gettempdir()).glob("pagedbench-kvprobe-*"))  # noqa: E731
    before = probes()
    for stack in ["hf"] + (["vllm"] if has("vllm") else []):
        r = run_cli("run", "--stack", stack, "--suite", suite, "--out", root, "--run-id", stack)
        assert r.returncode == 0, r.stderr[-3000:]
    assert probes() <= before, "the sharing probe's files were left behind"
    return root


def sharing_table(runs, out, title: str, hf_result: str) -> tuple[str, int]:
    """The report's Sharing table titled `title`, and the KV tokens without sharing computed from the HF
    result's workload: prompt + output - 1 for every output."""
    r = run_cli("collect", runs, "--out", out, "--no-plots")
    assert r.returncode == 0, r.stderr
    table = (out / "report.md").read_text().split(f"### Sharing — {title}")[1].split("###")[0]
    w = load_result(runs / "hf" / hf_result).workload
    n = w.spec.outputs_per_prompt
    return table, n * w.prompt_tokens + w.output_tokens - n * w.requests
