"""The throughput-latency frontier: each measured load a point, the loads no other beats on both joined,
a load the client could not measure left out, and one sentence of what each server delivered within its
SLOs (from the committed H100 serving evidence)."""

from pathlib import Path
from types import SimpleNamespace

from bench.report.frontier import Point, frontier_chart, pareto, points, within_slos
from bench.report.gather import collect

EVIDENCE = Path(__file__).resolve().parents[2] / "docs" / "results" / "h100-2026-12-06-serving" / "results"


def test_the_frontier_keeps_the_loads_no_other_beats_on_both():
    p = lambda tps, ms: Point(SimpleNamespace(), tps, ms)  # noqa: E731
    found = [p(100, 10), p(90, 20), p(300, 30), p(250, 40), p(400, 80), p(400, 90)]
    assert [(x.per_gpu, x.latency) for x in pareto(found)] == [(100, 10), (300, 30), (400, 80)]


def test_points_leave_out_what_the_client_could_not_measure():
    served = {d.stack: d for d in collect(EVIDENCE).serving}
    vllm = served["vllm"]
    assert len(points(vllm, "tpot_ms")) == len(vllm.loads)
    bound = vllm.loads[0].model_copy(update={"client": vllm.loads[0].client.model_copy(update={"bound": True})})
    unstreamed = vllm.loads[1].model_copy(update={"unmeasured": {"tpot_ms": "the server did not stream"}})
    damaged = vllm.model_copy(update={"loads": [bound, unstreamed, *vllm.loads[2:]]})
    assert len(points(damaged, "tpot_ms")) == len(vllm.loads) - 2
    assert len(points(damaged, "ttft_ms")) == len(vllm.loads) - 1


def test_the_answer_says_what_each_server_delivered_within_its_slos():
    serving = collect(EVIDENCE).serving
    [sentence] = within_slos(serving)
    assert sentence.startswith(
        "Served within the SLOs (TTFT p99 ≤ 1000 ms, TPOT p99 ≤ 100 ms), the most each server delivered, "
        "synthetic:llama-1b on NVIDIA H100 80GB HBM3: "
    )
    for data in serving:
        best = max(data.loads, key=lambda x: x.goodput_rps)
        assert f"{best.goodput_rps:,.1f} req/s within them at {best.load}" in sentence
    title, uri = frontier_chart(serving)
    assert title == "Throughput against latency: the frontier" and uri.startswith("data:image/png;base64,")


def test_servers_on_different_kinds_of_device_are_never_set_side_by_side():
    """HF's server said to have run on another card: one sentence, one frontier and one table per card."""
    from bench.report.collect import Collection
    from bench.report.serving import serving_tables
    from bench.report.serving_plots import serving_figures

    served = {d.stack: d for d in collect(EVIDENCE).serving}
    hf = served["hf"]
    moved = hf.model_copy(
        update={"environment": hf.environment.model_copy(update={"gpu": hf.environment.gpu.model_copy(
            update={"name": "NVIDIA H200"})})}
    )  # fmt: skip
    serving = [served["vllm"], moved]
    sentences = within_slos(serving)
    assert [s.split(": ", 1)[0].rsplit(", ", 1)[1] for s in sentences] == [
        "synthetic:llama-1b on NVIDIA H100 80GB HBM3",
        "synthetic:llama-1b on NVIDIA H200",
    ]
    assert "vLLM" in sentences[0] and "HF" not in sentences[0] and "HF" in sentences[1]
    tables = serving_tables(Collection([], [], [], 0, serving=serving))
    assert [t.title for t in tables] == [
        "Online serving: synthetic:llama-1b on NVIDIA H100 80GB HBM3",
        "Online serving: synthetic:llama-1b on NVIDIA H200",
    ]
    assert {row[0].split(" ")[0] for row in tables[1].rows} == {"HF"}
    titles = [title for title, _ in serving_figures(serving)]
    assert "Throughput against latency: the frontier — synthetic:llama-1b on NVIDIA H200" in titles
    assert len([t for t in titles if t.startswith("Throughput against latency")]) == 2
