"""One load on vLLM's server sent twice — by PagedBench's load generator and by `vllm bench serve`, vLLM's
own client — with the same prompts and output lengths at the same offered Poisson rate, and the two tools'
figures side by side. Both define TPOT as (E2E - TTFT) / (output - 1) and TTFT as the first streamed chunk,
so on one server they should agree within a few per cent; a larger gap is the tools', not the server's.

    python scripts/serve_crosscheck.py --suite serving --scenario vllm-serve --rate 8 --out crosscheck.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.errors import UserError  # noqa: E402
from bench.serving.cli import pick_scenario  # noqa: E402
from bench.serving.client import run_load  # noqa: E402
from bench.serving.metrics import summarize  # noqa: E402
from bench.serving.run import server_inputs, warm_up  # noqa: E402
from bench.serving.schedule import Load  # noqa: E402
from bench.serving.server import serve  # noqa: E402
from bench.stacks import load_server  # noqa: E402
from bench.suite import load_suite  # noqa: E402

# (PagedBench's figure, vllm bench serve's key): the same definitions.
PAIRS = {
    "request throughput, req/s": ("achieved_rps", "request_throughput"),
    "output throughput, tok/s": ("output_tokens_per_s", "output_throughput"),
    "mean TTFT, ms": ("ttft_mean_ms", "mean_ttft_ms"),
    "median TTFT, ms": ("ttft_p50_ms", "median_ttft_ms"),
    "mean TPOT, ms": ("tpot_mean_ms", "mean_tpot_ms"),
    "mean E2E, ms": ("e2e_mean_ms", "mean_e2el_ms"),
}


def ours(url, kind, requests, rate, seed) -> dict:
    # inf: every request at once (vllm bench serve's --request-rate inf), so both measure the server's
    # capacity; a finite rate's request throughput is the random schedule's as much as the server's.
    load = Load("concurrency", concurrency=len(requests)) if rate == float("inf") else Load("poisson", rate, seed=seed)
    records, duration = run_load(url, kind, "model", requests, load)
    s = summarize(records, load, duration)
    return {
        "achieved_rps": s.achieved_rps,
        "output_tokens_per_s": s.output_tokens_per_s,
        "ttft_mean_ms": s.ttft_ms.mean,
        "ttft_p50_ms": s.ttft_ms.p50,
        "tpot_mean_ms": s.tpot_ms.mean,
        "e2e_mean_ms": s.e2e_ms.mean,
        "completed": s.completed,
        "failed": s.failed,
        "errors": s.errors,
    }


def theirs(url, model_dir, requests, rate, seed) -> dict:
    from vllm.benchmarks import serve as bench
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for r in requests:
            f.write(json.dumps({"prompt": r.prompt, "output_tokens": r.output_len}) + "\n")
    parser = FlexibleArgumentParser()
    bench.add_cli_args(parser)
    args = parser.parse_args(
        ["--backend", "vllm", "--base-url", url, "--endpoint", "/v1/completions", "--model", "model",
         "--tokenizer", str(model_dir), "--dataset-name", "custom", "--dataset-path", f.name,
         "--custom-output-len", "-1", "--skip-chat-template", "--disable-shuffle", "--num-prompts",
         str(len(requests)), "--request-rate", str(rate), "--seed", str(seed), "--ignore-eos",
         "--percentile-metrics", "ttft,tpot,itl,e2el"]
    )  # fmt: skip
    return bench.main(args)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", required=True)
    p.add_argument("--scenario", required=True, help="a vllm scenario of the suite: its workload and knobs")
    p.add_argument("--rate", type=float, required=True, help="offered requests per second (Poisson), or inf")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--out", type=Path, required=True, help="the comparison, as JSON")
    a = p.parse_args(argv)
    suite = load_suite(a.suite)
    s = pick_scenario(suite, "vllm", a.scenario)
    model_dir, requests, settings = server_inputs(suite, s, "auto")  # vLLM places itself
    kind = load_server("vllm")
    with serve(kind, model_dir, a.port, a.out.with_suffix(".server.log"), settings) as server:
        warm_up(server.url, kind, requests)
        mine = ours(server.url, kind, requests, a.rate, a.seed)
        vllm = theirs(server.url, model_dir, requests, a.rate, a.seed)
    rows = []
    for name, (key, theirs_key) in PAIRS.items():
        x, y = mine[key], vllm.get(theirs_key)
        gap = (x - y) / y if y else None
        rows.append({"figure": name, "pagedbench": x, "vllm_bench_serve": y, "difference": gap})
        print(f"{name:28} {x:12,.2f} {y if y is not None else float('nan'):12,.2f} "
              f"{'' if gap is None else f'{gap:+.1%}':>9}")  # fmt: skip
    comparison = {"kind": "serve-crosscheck", "suite": suite.name, "scenario": s.name, "rate": a.rate}
    comparison |= {
        "requests": len(requests),
        "rows": rows,
        "pagedbench": mine,
        "completed_by_vllm": vllm.get("completed"),
    }
    a.out.write_text(json.dumps(comparison, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
