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
    sentence = within_slos(serving)
    assert sentence.startswith("Served within the SLOs (TTFT p99 ≤ 1000 ms, TPOT p99 ≤ 100 ms), the most each")
    for data in serving:
        best = max(data.loads, key=lambda x: x.goodput_rps)
        assert f"{best.goodput_rps:,.1f} req/s within them at {best.load}" in sentence
    title, uri = frontier_chart(serving)
    assert title == "Throughput against latency: the frontier" and uri.startswith("data:image/png;base64,")
