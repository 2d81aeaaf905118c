"""The collector on results of real CPU runs, plus corrupt, old-version and foreign files."""

import base64
import csv
import json
import shutil

import pytest

from bench.report import write_report
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("collect")
    results = root / "results"
    shutil.copytree(runs["out"], results)
    bad = results / "bad"
    bad.mkdir()
    (bad / "truncated.json").write_text('{"schema_version": 1, "run_id": "x", "sta')
    (bad / "old.json").write_text(json.dumps({"schema_version": 0, "run_id": "x"}))
    (bad / "foreign.json").write_text(json.dumps([1, 2, 3]))
    first = next(results.glob("hf/*padded-b4*.json"))
    shutil.copy(first, bad / "duplicate.json")
    out = root / "report"
    r = run_cli("collect", results, "--out", out)
    assert r.returncode == 0, r.stderr
    return {
        "out": out,
        "results": runs["results"],
        "md": (out / "report.md").read_text(),
        "html": (out / "report.html").read_text(),
    }


def test_tables_carry_the_results_numbers(report):
    md = report["md"]
    for name in ("sequential", "padded-b4", "static-b4", "paged", "vllm"):
        m = report["results"][name].metrics
        assert (
            f"| {name} | 1 | {m.output_tokens_per_s:,.1f} | {m.requests_per_s:,.2f} | {m.latency_ms.p50:,.0f} |" in md
        )
    kv = report["results"]["padded-b4"].kv
    assert f"{100 * kv.utilization:.1f} %" in md


def test_problems_list_every_bad_file(report):
    md = report["md"].split("## Problems")[1]
    assert "bad/truncated.json`: not valid JSON" in md
    assert "bad/old.json`: schema version 0" in md
    assert "bad/foreign.json`: not a PagedBench result" in md
    assert "duplicate of" in md and "bad/duplicate.json" in md  # one copy counted, the other listed
    assert "too-slow" in md and "timeout" in md  # the failed scenario is a problem, not a row


def test_summary_is_computed_from_the_rows(report):
    results = report["results"]
    ok = {n: r for n, r in results.items() if r.status == "ok"}
    best = max(ok.values(), key=lambda r: r.metrics.output_tokens_per_s)
    assert f"at {best.metrics.output_tokens_per_s:,.0f} tok/s" in report["md"]


def test_html_is_self_contained_with_plots(report):
    html = report["html"]
    images = html.count("src='data:image/png;base64,")
    assert images >= 4
    uri = html.split("src='data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(uri)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in html and "https://" not in html.replace("https://docs.pytorch.org", "")


def test_csv_has_one_row_per_result(report):
    rows = list(csv.DictReader(open(report["out"] / "results.csv")))
    assert len(rows) == len(report["results"])
    padded = next(r for r in rows if r["scenario"] == "padded-b4")
    assert float(padded["output_tokens_per_s"]) == pytest.approx(
        report["results"]["padded-b4"].metrics.output_tokens_per_s
    )


def test_empty_directory_is_a_usage_error(tmp_path):
    r = run_cli("collect", tmp_path, "--out", tmp_path / "r")
    assert r.returncode == 2 and "no result files" in r.stderr


def slowed(src, dst, factor):
    """Copy results, scaling time by `factor` consistently (elapsed, throughput, latencies)."""
    shutil.copytree(src, dst)
    for f in dst.rglob("*.json"):
        d = json.loads(f.read_text())
        m = d.get("metrics")
        if not m:
            continue
        m["elapsed_s"] *= factor
        for k in ("output_tokens_per_s", "prompt_tokens_per_s", "total_tokens_per_s", "requests_per_s"):
            m[k] /= factor
        for k in ("latency_ms", "ttft_ms", "tpot_ms"):
            if m.get(k):
                for q in ("p50", "p90", "p99", "mean", "max"):
                    m[k][q] *= factor
        f.write_text(json.dumps(d))


def test_compare_fails_on_a_10_percent_slowdown(runs, tmp_path):
    slowed(runs["out"], tmp_path / "slow", 1 / 0.9)
    same = run_cli("compare", runs["out"], runs["out"], "--max-regression", "5%")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "0 regression(s)" in same.stdout
    # CPU runs of a tiny model last well under 30 s: too short to judge, so the gate fails closed unless
    # told to allow it, or told how short a run it may judge.
    short = run_cli("compare", runs["out"], tmp_path / "slow", "--max-regression", "5%")
    assert short.returncode == 1 and "too short to judge" in short.stdout and "REGRESSION" not in short.stdout
    allowed = run_cli("compare", runs["out"], tmp_path / "slow", "--allow-missing")
    assert allowed.returncode == 0 and "NOT COMPARED" in allowed.stdout
    slow = run_cli("compare", runs["out"], tmp_path / "slow", "--max-regression", "5%", "--min-run-s", "0")
    assert slow.returncode == 1 and "REGRESSION" in slow.stdout
    assert "output_tokens_per_s" in slow.stdout and "-10.0%" in slow.stdout


def test_compare_refuses_different_workloads(runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(runs["out"], other)
    for f in other.rglob("*.json"):
        d = json.loads(f.read_text())
        d["workload"]["hash"] = "different"
        f.write_text(json.dumps(d))
    r = run_cli("compare", runs["out"], other)
    assert r.returncode == 2 and "never compared" in r.stderr


def test_collect_in_process_matches(runs, tmp_path):
    c = write_report(runs["out"], tmp_path / "r", plots=False)
    assert len(c.groups) == 1 and (tmp_path / "r" / "report.html").is_file()


def test_a_cpu_run_says_so_before_its_figures(report):
    """The answer's first lines say what a CPU run and sub-30-s timed runs cannot tell, before any ratio."""
    first = report["md"].split("\n## ")[1]
    said = first.split("\n\n")[1].splitlines()
    assert said[0].startswith("- **A CPU run**: these figures say what a CPU does with each stack")
    assert said[1].startswith("- **Short runs**: timed for under 30 s")
    assert "×**" not in "\n".join(said[:2])
