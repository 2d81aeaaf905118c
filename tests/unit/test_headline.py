"""The report opens with the answer: HF against vLLM on the same workload, at their best and at equal
memory, with ratios computed from the result files (checked here against the committed GPU results)."""

import json
import shutil
from pathlib import Path

import pytest

from bench.report import write_report
from bench.report.gather import collect
from bench.report.headline import headline
from tests.unit.test_collect_repeats import repeated

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
EVIDENCE = RESULTS / "h200-2026-12-01-one-card" / "results"  # the current evidence, the one the README points to


def load(relative: str) -> dict:
    return json.loads((EVIDENCE / relative).read_text())


def markdown_of(results: Path, out: Path) -> str:
    write_report(results, out, plots=False)
    return (out / "report.md").read_text()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> str:
    return markdown_of(EVIDENCE, tmp_path_factory.mktemp("report"))


def test_the_first_section_is_the_comparison_at_equal_memory(report):
    first = report.split("\n## ")[1]  # the section after the title
    assert first.startswith("HF and vLLM: the answer")
    hf = load("capacity-hf-120522/hf-hf-max-batch-r0.json")
    vllm = load("capacity-vllm-120522/vllm-vllm-r0.json")
    assert hf["config"]["memory_budget_gib"] == vllm["config"]["memory_budget_gib"] == 7
    ratio = vllm["metrics"]["output_tokens_per_s"] / hf["metrics"]["output_tokens_per_s"]
    rows, running = hf["kv"]["capacity"]["max_batch"], vllm["kv"]["peak_running"]
    said = first.split("\n\n")[1].splitlines()
    # What the figures cannot tell comes first: both capacity runs were timed for under 30 s.
    assert said[0] == (
        f"- **Short runs**: timed for under 30 s (hf padded b=max=128 {hf['metrics']['elapsed_s']:.1f} s, vllm "
        f"continuous {vllm['metrics']['elapsed_s']:.1f} s), so the throughput and the ratio carry start-up and "
        "sampling noise; a larger workload confirms them."
    )
    sentence = said[1]  # then the capacity answer
    assert "same memory budget of 7 GiB" in sentence
    assert f"**{ratio:.2f}×**" in sentence and "single runs" in sentence
    assert f"HF fitted at most {rows:,}" in sentence and f"up to {running:,.0f} running" in sentence
    assert f"({running / rows:.1f}× as many)" in sentence
    assert "| HF at its best, at 7 GiB | hf padded b=max=128 (hf-max-batch) |" in first
    assert "| vLLM at its best, at 7 GiB | vllm continuous (vllm) |" in first
    assert first.index("HF and vLLM side by side") < report.index("### Environment")


def test_kv_holding_tokens_is_one_definition_for_both_stacks(report):
    vllm = load("capacity-vllm-120522/vllm-vllm-r0.json")["kv"]
    hf = load("capacity-hf-120522/hf-hf-max-batch-r0.json")["kv"]
    held = vllm["reserved_bytes_peak"] * vllm["peak_usage"] * vllm["block_fill"] / 2**30
    line = next(x for x in report.splitlines() if x.startswith("| vLLM at its best, at 7 GiB"))
    assert f"| {held:.2f} GiB |" in line and f"{100 * vllm['block_fill']:.1f} %" in line
    line = next(x for x in report.splitlines() if x.startswith("| HF at its best, at 7 GiB"))
    assert f"{100 * hf['utilization_at_peak']:.1f} %" in line
    assert "of set aside — bytes holding tokens at the stack's busiest moment" in report


def test_repeats_give_the_ratio_an_interval(report):
    sentence = next(x for x in report.splitlines() if "workload mixed" in x and "llama-1b" in x and "best" in x)
    assert "± " in sentence and "at 95 %, over 5 and 1 runs" in sentence  # vLLM's 5 repeats, HF's one


def test_a_workload_only_one_stack_ran_is_named_not_compared(tmp_path):
    report = markdown_of(RESULTS / "h200-2026-11-27-proof" / "results", tmp_path)
    assert "workload sustained" in report.split("## Details")[0]
    assert "only vLLM ran this workload (vllm continuous (vllm-sustained)); nothing to compare it with" in report


def test_what_is_not_compared_says_so_in_its_own_sentence(report):
    first = report.split("## Details")[0]
    line = next(x for x in first.splitlines() if "workload sustained" in x)
    assert line.startswith("- Not like for like, so not compared above: synthetic:llama-1b on NVIDIA H200")
    assert "Not like for like, so not compared above:\n" not in first


def test_a_workload_whose_every_scenario_failed_is_said_so(tmp_path):
    report = markdown_of(RESULTS / "h200-2026-12-01" / "cut-short", tmp_path)  # the run the engine watch cut
    first = report.split("## Details")[0]
    assert (
        "workload sustained" in first and "no scenario of this workload succeeded (vllm vllm-sustained failed)" in first
    )
    assert "only HF ran" not in first


def test_no_comparison_is_said_when_one_stack_ran(tmp_path):
    repeated(tmp_path, [40.0])  # an HF result only
    lines, tables = headline(collect(tmp_path))
    assert tables == [] and "no like-for-like comparison" in lines[0]


def test_results_from_two_cards_of_one_name_say_so(tmp_path):
    """The superseded set's default suite ran HF on one H200 and vLLM on another: the headline says so."""
    report = markdown_of(RESULTS / "h200-2026-12-01" / "results", tmp_path)
    line = next(x for x in report.splitlines() if "workload mixed" in x and "best" in x)
    assert "on NVIDIA H200 (2 cards)" in line
    assert "on NVIDIA H200," in next(x for x in report.splitlines() if "workload many" in x)  # one card
    # A ratio of timings from two cards also holds their difference: the sentence says it where it is so.
    assert line.endswith("on two cards of this kind: the ratio holds their and their hosts' difference too.")
    many = next(x for x in report.splitlines() if "workload many" in x and "same memory budget" in x)
    assert many.endswith("(single runs).")  # one card


def test_stacks_measured_on_different_kinds_of_card_are_not_compared(tmp_path):
    """HF's results said to come from an H100, vLLM's from the H200: no ratio, and each workload says where
    the other stack ran it."""
    results = tmp_path / "results"
    shutil.copytree(EVIDENCE, results)
    for f in results.rglob("hf-*.json"):
        data = json.loads(f.read_text())
        data["environment"]["gpu"] |= {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-another"}
        f.write_text(json.dumps(data))
    first = markdown_of(results, tmp_path / "report").split("## Details")[0]
    assert "×" not in first and "no like-for-like comparison" in first
    line = next(x for x in first.splitlines() if "workload mixed" in x and "H100" in x)
    assert line.startswith("- synthetic:llama-1b on NVIDIA H100 80GB HBM3, workload mixed")
    assert "only HF ran this workload" in line
    assert "vLLM ran it on NVIDIA H200, and stacks are compared on one kind of card." in line
    from bench.report.cost import cost_table

    costs = cost_table(collect(results), 2.5).rows
    assert {r[0].split(" on ")[1] for r in costs if r[1].startswith("hf ")} == {"NVIDIA H100 80GB HBM3"}


def test_the_paper_table_names_the_card_of_each_row_where_the_rows_came_from_two(tmp_path):
    from bench.report.sharing import paper_table

    sharing = RESULTS / "h200-2026-12-07" / "results"
    one = paper_table(collect(sharing))
    assert one.rows and not any(" on NVIDIA" in row[3] for row in one.rows)
    shutil.copytree(sharing, tmp_path / "results")
    for f in (tmp_path / "results").rglob("hf-*.json"):
        data = json.loads(f.read_text())
        data["environment"]["gpu"] |= {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-another"}
        f.write_text(json.dumps(data))
    two = paper_table(collect(tmp_path / "results"))
    labels = {row[3].split(" on ", 1)[1] for row in two.rows if row[3].startswith("hf ")}
    assert labels == {"NVIDIA H100 80GB HBM3"}
    assert {row[3].split(" on ", 1)[1] for row in two.rows if row[3].startswith("vllm ")} == {"NVIDIA H200"}


def test_the_current_evidence_ran_on_one_card(report):
    cards = {json.loads(p.read_text())["environment"]["gpu"]["uuid"] for p in EVIDENCE.rglob("*.json")}
    assert len(cards) == 1
    assert "(2 cards)" not in report and report.count("on NVIDIA H200,") >= 3


def test_memory_is_never_printed_as_zero():
    from bench.report.headline import memory

    assert memory(3.5 * 2**30) == "3.50 GiB"
    assert memory(0.2 * 2**30) == "0.20 GiB"
    assert memory(3 * 2**20) == "3.00 MiB"  # 0.003 GiB: once printed as 0.00
    assert memory(2048) == "2.0 KiB"
    assert memory(None) == memory(0) == "—"


def test_the_answer_section_shows_one_chart_per_compared_workload(tmp_path):
    write_report(EVIDENCE, tmp_path, plots=True)
    html = (tmp_path / "report.html").read_text()
    answer = html[html.index("<section class='answer'>") : html.index("</section>")]
    charts = answer.count("<img alt='The answer: ")
    compared = (tmp_path / "report.md").read_text().split("\n## ")[1].count(" side by side — ")
    assert charts == compared >= 2
    assert answer.index("<img") < answer.index("<table")  # the picture before the tables


def test_hf_sequences_at_once_count_every_sample_of_a_batch():
    """A padded batch of 64 prompts with n samples each holds 64 x n rows, as vLLM counts its samples."""
    from bench.report.headline import Side

    c = collect(RESULTS / "h100-2026-12-07-sharing" / "results" / "sharing-hf-174226")
    held = {g.workload.name: Side(row).sequences for g in c.groups for row in g.rows}
    assert held == {"alpaca-n1": 64, "alpaca-n2": 128, "alpaca-n4": 256, "alpaca-n6": 384, "sharegpt-n1": 64,
                    "sharegpt-n2": 128, "sharegpt-n4": 128}  # fmt: skip
