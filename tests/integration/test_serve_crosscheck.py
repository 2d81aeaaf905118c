"""The cross-check against `vllm bench serve` runs end to end on the real vLLM server (CPU): both clients
send every request of the same workload and their figures come out side by side. (Whether they agree is
for a GPU: on a CPU a run of tenths of a second varies more than the tools could differ.)"""

import json
import textwrap

import pytest

from tests.conftest import free_port, has, run_script, script

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (has("vllm") and has("pandas")), reason="needs vLLM and pandas (vllm bench's custom data)"),
]


def _crosscheck(tmp_path, requests: int, output_len: int, *args: str):
    """scripts/serve_crosscheck.py on a tiny workload of its own (two runs per client), its JSON's path."""
    suite = tmp_path / "xc.yaml"
    suite.write_text(
        textwrap.dedent(f"""
        name: xc
        model: synthetic:tiny-llama
        workloads:
          w: {{requests: {requests}, seed: 2, output_len: {output_len},
              prompt_len: {{dist: uniform, min: 20, max: 60}}}}
        scenarios:
          - {{name: v, stack: vllm, workload: w, enforce_eager: true, kv_cache_space_gib: 1, max_model_len: 256}}
    """)
    )
    out = tmp_path / "xc.json"
    r = run_script("serve_crosscheck", "--suite", suite, "--scenario", "v", "--repeats", 2, "--out", out, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_both_clients_answer_every_request_and_the_figures_sit_side_by_side(tmp_path):
    out = _crosscheck(tmp_path, 24, 12, "--rates", "inf,0.5x", "--requests", "16", "--port", str(free_port()))
    text = out.read_text()
    assert "Infinity" not in text and "NaN" not in text  # JSON as JSON has it
    c = json.loads(text)
    assert c["kind"] == "serve-crosscheck" and [x["asked"] for x in c["loads"]] == ["inf", "0.5x"]
    saturation = c["loads"][0]["vllm_bench_serve"]["request_throughput"]
    assert c["loads"][0]["rate"] == "inf" and c["loads"][1]["rate"] == pytest.approx(0.5 * saturation)
    for load in c["loads"]:
        mine = load["pagedbench"]
        assert mine["completed"] == 16 and mine["failed"] == 0, mine["errors"]
        assert load["vllm_bench_serve"]["completed"] == 16 and load["repeats"] == 2
        assert len(load["pagedbench_repeats"]) == 1 and load["vllm_bench_serve_repeats"][0]["completed"] == 16
        figures = {row["figure"]: row for row in load["rows"]}
        assert set(figures) >= {"mean TTFT, ms", "mean TPOT, ms", "output throughput, tok/s"}
        # On 2 cores the engine can starve the client: its figures are then withheld with the reason.
        runs = [mine, *load["pagedbench_repeats"]]
        for run in runs:
            assert not run["client"]["bound"] or run["unmeasured"]["ttft_ms"].startswith("client-bound: ")
        bound = any(run["client"]["bound"] for run in runs)  # a figure stands only where every repeat measured it
        for row in figures.values():
            assert row["vllm_bench_serve"] is not None
            assert row["verdict"] in ("within ±3%", "differs", "not measured") or row["verdict"].startswith("not told")
            assert (row["pagedbench"] is None) if bound and "throughput" not in row["figure"] else row["pagedbench"] > 0
        # The server's own view of the same requests: every one counted, and inside what either client saw
        # (a client's TTFT and E2E hold the server's and the way there and back).
        for run in [*runs, load["vllm_bench_serve"], *load["vllm_bench_serve_repeats"]]:
            assert run["server"]["requests"] == 16 and run["server"]["mean TTFT, ms"] > 0
        for name in ("mean TTFT, ms", "mean E2E, ms"):
            row = figures[name]
            assert 0 < row["server_under_vllm_bench_serve"] <= row["vllm_bench_serve"]
            assert bound or 0 < row["server_under_pagedbench"] <= row["pagedbench"]
    from bench.report.gather import collect

    (tmp_path / "run").mkdir()
    out.rename(tmp_path / "run" / "xc.json")
    collected = collect(tmp_path / "run")  # read through its model, never a parse error
    assert not collected.problems and not collected.notes and len(collected.serve_crosschecks) == 1


def test_both_clients_send_the_server_the_same_request_bodies(tmp_path):
    """The very bodies each client sends, caught by the stub server: `vllm bench serve` run with the
    cross-check's arguments sends what PagedBench sends (greedy, token ids in every chunk, forced
    length), apart from two fields of its own that ask the server for nothing (no penalty, no logprobs)."""
    import json
    import urllib.request

    from bench.serving.capacity import StubServer
    from bench.serving.cli import pick_scenario
    from bench.serving.run import server_inputs
    from bench.stacks import load_server
    from bench.suite import load_suite

    xc = script("serve_crosscheck")
    suite = tmp_path / "xc.yaml"
    suite.write_text(
        "name: xc\nmodel: synthetic:tiny-llama\nworkloads: {w: {requests: 6, seed: 3, prompt_len: 24, "
        "output_len: {dist: uniform, min: 4, max: 9}}}\nscenarios: [{name: v, stack: vllm, workload: w}]\n"
    )
    loaded = load_suite(str(suite))
    model_dir, requests, _ = server_inputs(loaded, pick_scenario(loaded, "vllm", "v"), "auto")
    kind = load_server("vllm")
    fields = xc.same_request_fields(kind, requests)
    assert fields == {"temperature": 0.0, "extra_body": {"return_token_ids": True}}
    with StubServer(0.0) as stub:
        xc.theirs(stub.url, model_dir, requests, float("inf"), 0, fields)
        with urllib.request.urlopen(f"{stub.url}/bodies", timeout=10) as r:
            sent_by_vllm = {b["prompt"]: b for b in json.loads(r.read())}  # its first test request too
    mine = {r.prompt: kind.body("model", r) for r in requests}
    assert set(sent_by_vllm) == set(mine)
    for prompt, body in mine.items():
        theirs = sent_by_vllm[prompt]
        assert {k: v for k, v in theirs.items() if k not in body} == {"repetition_penalty": 1.0, "logprobs": None}
        assert {k: theirs[k] for k in body} == body


def test_a_request_field_that_varies_by_request_is_refused():
    from bench.errors import UserError
    from bench.stacks.base import ServeRequest, ServerKind

    xc = script("serve_crosscheck")
    per_request = lambda m, r: {"ignore_eos": True, "min_tokens": r.output_len}  # noqa: E731
    varying = ServerKind(name="x", command=lambda *a: [], body=per_request, chunk_tokens=len)
    requests = [ServeRequest(0, "a", 0, 4), ServeRequest(1, "b", 0, 5)]
    with pytest.raises(UserError, match="min_tokens vary by request"):
        xc.same_request_fields(varying, requests)
    forced = ServerKind(name="x", command=lambda *a: [], body=lambda m, r: {"temperature": 0.7}, chunk_tokens=len)
    with pytest.raises(UserError, match="needs ignore_eos"):
        xc.same_request_fields(forced, requests)


def test_against_the_stub_both_clients_are_timed_against_the_servers_own_clock(tmp_path):
    """With --stub, the server is the instant stub: its own first-chunk and last-chunk times stand beside
    both clients' TTFT and E2E, inside what either client saw, for every request of every run."""
    out = _crosscheck(tmp_path, 40, 16, "--stub", "--itl-ms", "1", "--rates", "20")
    c = json.loads(out.read_text())
    assert c["server"] == "PagedBench's stub, a token every 1 ms"
    (load,) = c["loads"]
    mine = [load["pagedbench"], *load["pagedbench_repeats"]]
    for run in [*mine, load["vllm_bench_serve"], *load["vllm_bench_serve_repeats"]]:
        assert run["server"]["requests"] == 40 and run["server"]["mean TPOT, ms"] is None
        assert 0 < run["server"]["mean TTFT, ms"] < run["server"]["mean E2E, ms"]
    figures = {row["figure"]: row for row in load["rows"]}
    assert 0 < figures["mean TTFT, ms"]["server_under_vllm_bench_serve"] <= figures["mean TTFT, ms"]["vllm_bench_serve"]
    bound = any(run["client"]["bound"] for run in mine)
    assert bound or 0 < figures["mean E2E, ms"]["server_under_pagedbench"] <= figures["mean E2E, ms"]["pagedbench"]


@pytest.mark.parametrize("bad", [["--itl-ms", "-1"], ["--itl-ms", "nan"], ["--rates", "0"]])
def test_bad_cross_check_arguments_are_one_line_and_exit_2(bad, tmp_path):
    r = run_script("serve_crosscheck", "--suite", "serving", "--scenario", "vllm-serve", "--stub", "--out",
                   tmp_path / "x.json", *bad, timeout=120)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("Error: "), r.stderr
