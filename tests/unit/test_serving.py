"""The load generator's parts that need no server: replayable schedules, the metric definitions, the
answer check, the metrics page parser and the CLI's refusals."""

import statistics

import pytest

from bench.results.serving import LoadResult, ServingResult
from bench.serving.client import Record, check
from bench.serving.metrics import columns, per_request, summarize
from bench.serving.run import parse_metrics
from bench.serving.schedule import Load, send_times
from bench.stacks.base import ServeRequest
from bench.stacks.vllm.serve import METRICS
from tests.conftest import run_cli


def serving_file(path, records_by_load, loads, status="ok", error=None, **kw):
    """A serving result file as `pagedbench serve` writes it, from each load's records."""
    entries = []
    for (load, summary), records in zip(loads, records_by_load):
        entries.append(LoadResult(**summary.model_dump(), started_s=kw.pop(f"started_{load}", 0.0),
                                  records=columns(records)))  # fmt: skip
    identity = dict(run_id="r", stack="vllm", server="vllm serve", suite="s", scenario="v", model="m", workload="w")
    result = ServingResult(**(identity | kw), requests=max(len(r) for r in records_by_load), loads=entries,
                           status=status, error=error)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.model_dump_json())
    return result


def gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


def test_schedules_are_replayable_and_offer_their_rate():
    poisson = send_times(Load("poisson", rate=20, seed=7), 4000)
    assert poisson == send_times(Load("poisson", rate=20, seed=7), 4000) != send_times(Load("poisson", rate=20), 4000)
    assert 0 < poisson[0] < 1 and 4000 / poisson[-1] == pytest.approx(20, rel=1e-9)  # scaled to n/rate
    assert send_times(Load("constant", rate=4), 5) == [0, 0.25, 0.5, 0.75, 1.0]
    bursty = gaps(send_times(Load("gamma", rate=20, burstiness=0.25, seed=1), 4000))
    smooth = gaps(send_times(Load("gamma", rate=20, burstiness=4, seed=1), 4000))
    cv = lambda g: statistics.stdev(g) / statistics.mean(g)  # noqa: E731
    assert cv(bursty) == pytest.approx(2.0, rel=0.15) and cv(smooth) == pytest.approx(0.5, rel=0.15)  # 1/sqrt(k)
    assert send_times(Load("concurrency", concurrency=4), 10) is None


def test_the_poisson_and_gamma_schedules_are_the_ones_vllm_bench_serve_sends():
    """Same seed, rate and burstiness: the very same send times as vLLM's own client (its generator run
    with its clock and sleep replaced, so the schedule is read without waiting it out)."""
    import asyncio

    import numpy as np

    vb = pytest.importorskip("vllm.benchmarks.serve")
    for profile, rate, burst in (("poisson", 20.0, 1.0), ("gamma", 50.0, 0.5)):
        np.random.seed(7)  # as vllm bench serve seeds it from --seed
        clock = [1000.0]

        async def advance(seconds, clock=clock):
            clock[0] += seconds

        seen: list[float] = []

        async def read(clock=clock, seen=seen):
            async for _ in vb.get_request(list(range(300)), rate, burst):
                seen.append(clock[0] - 1000.0)

        mp = pytest.MonkeyPatch()
        mp.setattr(vb.time, "time", lambda clock=clock: clock[0])
        mp.setattr(vb.asyncio, "sleep", advance)
        try:
            asyncio.run(read())
        finally:
            mp.undo()
        ours = send_times(Load(profile, rate=rate, burstiness=burst, seed=7), 300)
        assert max(abs(a - b) for a, b in zip(seen, ours)) < 1e-9, profile


@pytest.mark.parametrize(
    "bad", [dict(profile="poisson"), dict(profile="concurrency"), dict(profile="gamma", rate=1, burstiness=0)]
)
def test_a_load_without_its_figure_is_refused(bad):
    with pytest.raises(ValueError):
        Load(**bad)


def test_tpot_ttft_and_goodput_follow_their_definitions():
    fast = Record(index=0, sent_s=1.0, chunk_s=[1.1, 1.2, 1.3, 1.5], end_s=1.5, output_tokens=4)
    slow = Record(index=1, sent_s=1.0, chunk_s=[3.0, 3.1], end_s=3.1, output_tokens=2)
    failed = Record(index=2, sent_s=1.0, error="HTTP 500: boom")
    f = per_request(fast)
    assert f["ttft"] == pytest.approx(0.1) and f["e2e"] == pytest.approx(0.5)
    assert f["tpot"] == pytest.approx((0.5 - 0.1) / 3)  # (E2E - TTFT) / (output - 1)
    s = summarize([fast, slow, failed], Load("constant", rate=1), duration_s=2.0, slos={"ttft_ms_p99": 500})
    assert (s.completed, s.failed, s.errors) == (2, 1, ["1 × HTTP 500: boom"])
    assert s.achieved_rps == 1.0 and s.goodput_rps == 0.5  # only `fast` met a 500 ms TTFT
    assert s.output_tokens_per_s == 3.0 and s.itl_ms.count == 3 + 1  # the gaps between streamed chunks


def test_an_answer_that_is_not_the_workloads_is_a_failed_request():
    r = ServeRequest(index=0, prompt="abc", prompt_tokens=3, output_len=4)
    cases = {
        "no usage": Record(0, 0.0, chunk_s=[0.1] * 4, end_s=1),
        "3 output tokens": Record(0, 0.0, chunk_s=[0.1] * 3, end_s=1, output_tokens=3, prompt_tokens=3),
        "2 tokens streamed": Record(0, 0.0, [0.1] * 2, streamed_tokens=2, end_s=1, output_tokens=4, prompt_tokens=3),
        "prompt of 5 tokens": Record(0, 0.0, chunk_s=[0.1] * 4, end_s=1, output_tokens=4, prompt_tokens=5),
    }
    for reason, record in cases.items():
        check(record, r)
        assert reason in (record.error or ""), reason
    merged = Record(0, 0.0, chunk_s=[0.1, 0.2], streamed_tokens=4, end_s=1, output_tokens=4, prompt_tokens=3)
    text_pieces = Record(0, 0.0, chunk_s=[0.1], end_s=1, output_tokens=4, prompt_tokens=3)
    for fine in (merged, text_pieces):  # chunks of several tokens; a server that does not count them
        check(fine, r)
        assert fine.ok, fine.error


def test_the_metrics_page_is_read_summed_over_labels():
    page = (
        "# HELP vllm:kv_cache_usage_perc KV usage\n"
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25\n'
        'vllm:num_requests_running{engine="0",model_name="m"} 3.0\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 2.0\n'
        'vllm:prefix_cache_hits_created{engine="0"} 1.7e9\n'
    )
    assert parse_metrics(page, METRICS) == {"kv_usage": 0.25, "running": 5.0}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--slo", "ttft=5"], "--slo 'ttft=5': give KEY=MILLISECONDS"),
        (["--slo", "ttft_ms_p99", "--rate", "1"], "--slo 'ttft_ms_p99': give KEY=MILLISECONDS"),
        (["--slo", "ttft_ms_p99=fast", "--rate", "1"], "is not a number of milliseconds"),
        (["--slo", "ttft_ms_p99=-1", "--rate", "1"], "must be a positive number"),
        ([], "give at least one --rate"),
        (["--rate", "1", "--scenario", "nope"], "--scenario nope: the suite has no vllm scenario of that name; its"),
    ],
)
def test_bad_serving_input_is_one_clear_line(args, message, tmp_path):
    base = ["serve", "--stack", "vllm", "--suite", "smoke", "--out", tmp_path]
    if "--scenario" not in args:
        base += ["--scenario", "vllm"]
    r = run_cli(*base, *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_scenario_the_server_cannot_honour_is_refused_before_anything_starts(tmp_path):
    r = run_cli("serve", "--stack", "hf", "--suite", "multi-gpu", "--scenario", "hf-padded-b16-tp2", "--rate", "1",
                "--out", tmp_path)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "transformers serve has no tensor_parallel_size (the scenario sets 2)" in r.stderr
    assert not list(tmp_path.iterdir())  # no run directory


def test_a_failed_serving_run_is_reported_with_its_failures(tmp_path):
    import json

    from bench.report.gather import collect
    from bench.report.serving import serving_tables

    ok = Record(index=0, sent_s=0.0, chunk_s=[0.1, 0.2], end_s=0.2, output_tokens=2)
    lost = Record(index=1, sent_s=0.0, error="ConnectError: connection lost")
    load = Load("concurrency", concurrency=1)
    summary = summarize([ok, lost], load, duration_s=1.0)
    error = "vllm serve stopped answering during concurrency 1"
    serving_file(tmp_path / "serving-vllm-v.json", [[ok, lost]], [(load.label, summary)], status="failed", error=error)
    c = collect(tmp_path)
    assert c.serving and c.problems == [("serving-vllm-v.json", "serving failed: " + error)]
    row = serving_tables(c)[0].rows[0]
    assert row[:5] == ["vLLM (vllm serve)", "v", "concurrency 1", "1 / 2", "1 ⚠"]
    data = json.loads((tmp_path / "serving-vllm-v.json").read_text())
    (tmp_path / "serving-vllm-v.json").write_text(json.dumps(data | {"loads": [{"load": "x"}]}))
    c = collect(tmp_path)  # a file missing the figures is a problem, not a row
    assert c.serving == [] and "serving result does not match the schema: loads.0" in c.problems[0][1]


def test_a_suites_serving_plan_gives_the_loads_and_is_checked(tmp_path):
    from bench.serving.cli import loads_from
    from bench.suite import load_suite

    plan = load_suite("serving").serving
    loads = loads_from("poisson", (), (), 1.0, 0, plan)
    assert [x.label for x in loads][:2] == ["poisson 4 req/s", "poisson 16 req/s"] and loads[-1].concurrency == 64
    assert loads_from("constant", (2.0,), (), 1.0, 0, plan)[0].label == "constant 2 req/s"  # the command line wins
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nmodel: synthetic:tiny-llama\nworkloads: {w: {requests: 2, prompt_len: 4, output_len: 2}}\n"
        "scenarios: [{name: v, stack: vllm, workload: w}]\nserving: {rates: [], slos: {ttft: 5}}\n"
    )
    r = run_cli("serve", "--stack", "vllm", "--suite", bad, "--scenario", "v", "--out", tmp_path)
    assert r.returncode == 2 and "serving" in r.stderr and "Traceback" not in r.stderr


def test_the_serving_charts_draw_latency_goodput_and_kv_against_load(tmp_path):
    import base64
    import io

    pytest.importorskip("matplotlib")
    from PIL import Image

    from bench.report import write_report

    loads, all_records, started = [], [], {}
    for i, rate in enumerate([1.0, 4.0, 16.0]):
        records = [
            Record(index=k, sent_s=k / rate, chunk_s=[k / rate + 0.05 * (i + 1), k / rate + 0.1 * (i + 1)],
                   end_s=k / rate + 0.1 * (i + 1), output_tokens=2)
            for k in range(8)
        ]  # fmt: skip
        load = Load("poisson", rate=rate)
        loads.append((load.label, summarize(records, load, duration_s=8 / rate, slos={"ttft_ms_p99": 120})))
        all_records.append(records)
        started[f"started_{load.label}"] = 10.0 * i
    timeline = [{"t_s": t, "kv_usage": min(1.0, t / 30)} for t in range(0, 30)]
    serving_file(tmp_path / "r" / "serving-vllm-v.json", all_records, loads, timeline=timeline, **started)
    write_report(tmp_path / "r", tmp_path / "report")
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Latency against load" in page and "Goodput and KV use against load" in page
    for uri in page.split("src='data:image/png;base64,")[1:]:
        image = Image.open(io.BytesIO(base64.b64decode(uri.split("'")[0])))
        assert 600 < image.width < 2000 and 200 < image.height < 1200


def test_compare_gates_serving_results_load_by_load(tmp_path):

    def serving_dir(name, ttft_s, failed=0):
        starts = [k * 0.5 for k in range(80 - failed)]
        ok = [Record(k, t, chunk_s=[t + ttft_s, t + ttft_s + 0.02], end_s=t + ttft_s + 0.02, output_tokens=2)
              for k, t in enumerate(starts)]  # fmt: skip
        lost = [Record(index=100 + k, sent_s=0.0, error="HTTP 500: boom") for k in range(failed)]
        load = Load("poisson", rate=2)
        summary = summarize(ok + lost, load, duration_s=40.0)
        serving_file(tmp_path / name / "serving-vllm-v.json", [ok + lost], [(load.label, summary)],
                     status="failed" if failed else "ok", error="some requests failed" if failed else None)  # fmt: skip
        return tmp_path / name

    base = serving_dir("base", ttft_s=0.05)
    same = run_cli("compare", base, base)
    assert same.returncode == 0 and same.stdout.strip().splitlines()[-1].startswith("PASS")
    assert "vllm v @ poisson 2 req/s" in same.stdout and "ttft_p99_ms" in same.stdout
    slower = run_cli("compare", base, serving_dir("slow", ttft_s=0.08))
    assert slower.returncode == 1 and "REGRESSION" in slower.stdout and "FAIL" in slower.stdout.splitlines()[-1]
    broken = run_cli("compare", base, serving_dir("broken", ttft_s=0.05, failed=20))
    line = next(x for x in broken.stdout.splitlines() if "completed_share" in x)
    assert broken.returncode == 1 and "REGRESSION" in line  # a quarter of the requests failed


def test_a_running_load_says_how_many_requests_have_their_answer():
    import asyncio
    import time

    from bench.serving.client import _report

    records = [Record(0, 0.0, end_s=0.1), Record(1, 0.0, error="HTTP 500: x"), Record(2, 0.0)]
    lines: list[str] = []

    async def briefly():
        task = asyncio.create_task(_report(records, 5, "poisson 2 req/s", time.perf_counter(), lines.append, 0.01))
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(briefly())
    assert lines and lines[0].startswith("  poisson 2 req/s: 2/5 answered after ")  # a failure is an answer too


def test_a_server_that_did_not_stream_has_no_latency_figures_only_the_reason():
    whole = [Record(k, 0.0, chunk_s=[0.5], end_s=0.5, output_tokens=16) for k in range(10)]
    whole[0] = Record(0, 0.0, chunk_s=[0.1, 0.5], end_s=0.5, output_tokens=16)  # one of ten streamed
    s = summarize(whole, Load("concurrency", concurrency=2), duration_s=2.5, slos={"ttft_ms_p99": 1000})
    assert s.ttft_ms is s.tpot_ms is s.itl_ms is s.goodput_rps is None and s.e2e_ms.count == 10
    assert "did not stream: 9 of 10 answers" in s.unmeasured["ttft_ms"] and s.tokens_per_chunk == 160 / 11
    streamed = [Record(k, 0.0, chunk_s=[0.1 * (j + 1) for j in range(16)], end_s=1.6, output_tokens=16)
                for k in range(10)]  # fmt: skip
    s = summarize(streamed, Load("concurrency", concurrency=2), duration_s=8.0)
    assert not s.unmeasured and s.tokens_per_chunk == 1 and s.ttft_ms.p50 == pytest.approx(100)
    # A loaded server merges some short answers into one chunk: it still streamed (vLLM at 1,024 at once).
    merged = streamed[:7] + [Record(k, 0.0, chunk_s=[1.6], end_s=1.6, output_tokens=16) for k in range(7, 10)]
    assert not summarize(merged, Load("concurrency", concurrency=2), duration_s=8.0).unmeasured


def test_a_client_bound_load_is_marked_and_its_latencies_not_given():
    from bench.results.serving import ClientHealth

    records = [Record(k, 0.0, chunk_s=[0.1, 0.2], end_s=0.2, output_tokens=2) for k in range(4)]
    bound = ClientHealth(cpu_share=0.97, bound=True, reason="the client used 97% of a core")
    s = summarize(records, Load("poisson", rate=50), duration_s=0.1, client=bound)
    assert s.ttft_ms is None and s.unmeasured["achieved_rps"].startswith("client-bound: the client used 97%")


def test_a_one_token_answer_has_no_tpot_and_meets_a_tpot_slo():
    one = Record(0, 0.0, chunk_s=[0.05], end_s=0.05, output_tokens=1)
    s = summarize([one], Load("concurrency", concurrency=1), duration_s=1.0, slos={"tpot_ms_p99": 10})
    assert s.tpot_ms is None and s.goodput_rps == 1.0


def test_records_are_stored_as_columns_and_any_figure_comes_back_from_them():
    records = [Record(1, 0.5, chunk_s=[0.6, 0.7, 0.75], streamed_tokens=3, end_s=0.8, output_tokens=3),
               Record(0, 0.0, error="HTTP 500: boom")]  # fmt: skip
    c = columns(records)
    assert c.index == [0, 1] and c.chunks == [0, 3] and c.chunk_us == [100000, 200000, 250000]
    assert c.error == ["HTTP 500: boom", None] and c.end_s == [None, 0.8]
    with pytest.raises(ValueError, match="chunk_us"):
        type(c).model_validate(c.model_dump() | {"chunks": [0, 2]})


def test_collect_reads_a_serving_result_at_the_size_of_a_full_sweep(tmp_path):
    """6 loads of 1,536 requests of 256 streamed tokens: 2.4 M chunk times, more than a million values."""
    from bench.files import MAX_JSON_BYTES
    from bench.report.gather import collect
    from bench.serving import MAX_SWEEP_TOKENS

    n, tokens = 1536, 256
    all_records, loads = [], []
    for rate in (1, 2, 4, 8, 16, 32):
        records = [Record(k, k / rate, chunk_s=[k / rate + 0.01 * (j + 1) for j in range(tokens)],
                          end_s=k / rate + 0.01 * tokens, output_tokens=tokens) for k in range(n)]  # fmt: skip
        load = Load("poisson", rate=rate)
        loads.append((load.label, summarize(records, load, duration_s=n / rate)))
        all_records.append(records)
    serving_file(tmp_path / "serving-vllm-v.json", all_records, loads)
    size = (tmp_path / "serving-vllm-v.json").stat().st_size
    c = collect(tmp_path)
    assert not c.problems and len(c.serving) == 1 and len(c.serving[0].loads) == 6
    assert sum(len(x.records.chunk_us) for x in c.serving[0].loads) == 6 * n * tokens
    # The largest sweep `serve` accepts stays under what the reader takes, at this file's bytes per chunk.
    assert MAX_SWEEP_TOKENS * (size / (6 * n * tokens)) * 1.5 < MAX_JSON_BYTES


def test_a_sweep_larger_than_a_result_records_is_refused_before_anything_starts(tmp_path):
    suite = tmp_path / "big.yaml"
    suite.write_text(
        "name: big\nmodel: synthetic:tiny-llama\nworkloads: {w: {requests: 1000000, prompt_len: 4, output_len: 64}}\n"
        "scenarios: [{name: v, stack: vllm, workload: w}]\n"
    )
    r = run_cli("serve", "--stack", "vllm", "--suite", suite, "--rate", "1", "--out", tmp_path / "out")
    assert r.returncode == 2 and "over the 16,000,000 one serving result records" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_the_client_measures_itself_against_an_instant_stub(tmp_path):
    """`pagedbench bench-client`: every request answered by the stub in its own process, the rate and
    streamed tokens the client read, what it added over the stub's own times, and its health."""
    import json

    out = tmp_path / "client.json"
    r = run_cli("bench-client", "--requests", "48", "--tokens", "12", "--rate", "40", "--stub-workers", "2",
                "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["kind"] == "client-capacity" and [x["load"] for x in report["loads"]] == [
        "concurrency 48",
        "poisson 40 req/s",
    ]
    for load in report["loads"]:
        assert load["completed"] == 48 and load["failed"] == 0 and load["client"]["cpu_share"] > 0
        assert load["streamed_tokens_per_s"] == pytest.approx(12 * load["achieved_rps"])
    at_once, rate = report["loads"]
    # All at once, against two stub processes on one port: no added latency (a stub's queue is not the
    # client's cost); at a rate, against one, what the client added over the stub's own times.
    assert at_once["stub_processes"] == 2 and set(at_once["added_ms"].values()) == {None}
    assert "stub's queue" in at_once["added_note"]
    assert rate["stub_processes"] == 1 and rate["added_note"] is None
    assert None not in rate["added_ms"].values()
    assert "(2 stub processes); added latency not measured" in r.stdout
    assert "(1 stub process); added TTFT p50/p99" in r.stdout
    from bench.report.gather import collect

    assert collect(tmp_path).notes == [("client.json", "not a result: the load generator's capacity against a "
                                        "stub server (pagedbench bench-client)")]  # fmt: skip


def test_a_serving_only_report_says_what_the_server_ran_on(tmp_path):
    from bench.report.gather import collect
    from bench.report.render import markdown
    from bench.report.tables import environment_table

    record = Record(index=0, sent_s=0.0, chunk_s=[0.1, 0.2], end_s=0.2, output_tokens=2)
    load = Load("concurrency", concurrency=1)
    loads = [(load.label, summarize([record], load, duration_s=1.0))]
    gpu = {"name": "Some GPU", "uuid": "GPU-x", "driver": "123.4", "memory_total_mib": 1.0, "index": 0}
    env = {"pagedbench": "0", "python": "3.12", "platform": "p", "packages": {"vllm": "9.9.9"}, "gpu": gpu}
    serving_file(tmp_path / "a" / "serving-vllm-a.json", [[record]], loads, environment=env)
    c = collect(tmp_path / "a")
    assert environment_table(c).rows == [["Some GPU", "123.4", "—", "vllm 9.9.9", "—", "—", "vllm"]]
    serving_file(tmp_path / "b" / "serving-vllm-b.json", [[record]], loads)  # no environment recorded
    c = collect(tmp_path / "b")
    assert environment_table(c) is None and "### Environment" not in markdown(c, "hf")


def test_ctrl_c_during_a_load_cuts_it_and_is_raised_outside_the_event_loop(monkeypatch):
    """The handler only marks the stop while the loop runs (raised while aiohttp parses a chunk, uvloop's
    stream callback would close that connection and only log it, and the sweep would go on); the client's
    watcher ends the load, and the stop is raised after the loop, as the sweep's interrupt."""
    import os
    import signal
    import threading
    import time

    from bench import interrupts
    from bench.serving.capacity import StubServer
    from bench.serving.client import run_load
    from bench.serving.run import SweepInterrupted
    from bench.serving.stub import STUB

    monkeypatch.setattr(interrupts, "_stopped", False)  # put back as it was after the test
    handlers = {sig: signal.getsignal(sig) for sig in interrupts.SIGNALS}
    requests = [ServeRequest(i, f"request {i}", 0, 400) for i in range(8)]
    try:
        with StubServer(itl_ms=5.0) as stub, interrupts.raising(SweepInterrupted):
            run_load(stub.url, STUB, "stub", requests[:2], Load("concurrency", concurrency=2))  # answers in full
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
            t = time.monotonic()
            with pytest.raises(SweepInterrupted):
                run_load(stub.url, STUB, "stub", requests, Load("concurrency", concurrency=8))
            assert time.monotonic() - t < 1.5  # 400 tokens 5 ms apart take 2 s: the load was cut
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
