"""Loads on vLLM's server sent twice each — by PagedBench's load generator and by `vllm bench serve`,
vLLM's own client — with the same prompts and output lengths at the same offered Poisson rate (or all at
once), and the two tools' figures side by side. Both define TPOT as (E2E - TTFT) / (output - 1) and TTFT
as the first streamed chunk, so on one server they should agree within a few per cent; a larger gap is
the tools', not the server's.

    python scripts/serve_crosscheck.py --suite serving --scenario vllm-serve --rates inf,0.5x,0.9x \
        --requests 1024 --out crosscheck.json

A rate is requests per second, `inf` (every request at once: the server's saturation), or `Fx`: that
fraction of the saturation vllm bench serve measured at `inf` (which must come first). At a finite rate
both clients send on the very same schedule (`bench.serving.schedule` draws vllm bench serve's, from the
same seed), and with the same request fields: whatever PagedBench puts in a request body besides what
vllm bench serve sends by itself (greedy sampling, token ids in every chunk) is given to it as
`--temperature` and `--extra-body`. The server is first warmed up with every request at once (its largest
shapes), and each rate is sent `--repeats` times per client in alternating order (ours first, then theirs
first), so that neither client always meets the server a load later. Around every run the server's own
metrics are read (`/metrics`: its TTFT, per-request TPOT and E2E histograms, from when it received each
request to when it emitted the token), and their means over that run's requests stand beside both clients'
as a third view that no client's own overhead is in. With `--stub` the server is PagedBench's instant stub
(`bench.serving.stub`, streaming one token every `--itl-ms`) instead of vLLM: both clients then meet a
server whose own times are known to the microsecond, so what each client adds to TTFT and E2E is measured
apart from any engine. The output is JSON
(`"kind": "serve-crosscheck"`, no NaN or Infinity, `bench.results.serve_crosscheck.ServeCrosscheck`):
`pagedbench collect` shows it in the report's "Serving client against vllm bench serve" table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import numbers
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.errors import UserError  # noqa: E402
from bench.results.serve_crosscheck import SERVE_CROSSCHECK_KIND, TARGET, ServeCrosscheck, verdict  # noqa: E402
from bench.results.store import write_atomic  # noqa: E402
from bench.serving.cli import pick_scenario  # noqa: E402
from bench.serving.client import run_load  # noqa: E402
from bench.serving.metrics import summarize  # noqa: E402
from bench.serving.run import parse_metrics, server_inputs, warm_up  # noqa: E402
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
# The server's own view (vLLM's Prometheus histograms, seconds): figure -> metric. Means over a run are
# differences of their sums over differences of their counts.
SERVER_HISTOGRAMS = {
    "mean TTFT, ms": "vllm:time_to_first_token_seconds",
    "mean TPOT, ms": "vllm:request_time_per_output_token_seconds",
    "mean E2E, ms": "vllm:e2e_request_latency_seconds",
}


class VllmView:
    """The vLLM server's own latency means over a run: each histogram's sum and count read before and
    after it (`/metrics`), the difference of the sums over the difference of the counts."""

    NAMES = {f"{m}_{part}": f"{m}_{part}" for m in SERVER_HISTOGRAMS.values() for part in ("sum", "count")}

    def __init__(self, url: str) -> None:
        self.url = url

    def _read(self) -> dict[str, float]:
        """The histograms' sums and counts now; empty where the page cannot be read."""
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as r:
                return parse_metrics(r.read().decode(errors="replace"), self.NAMES)
        except OSError:
            return {}

    def start(self) -> None:
        self.before = self._read()

    def means(self) -> dict:
        """Each figure's mean over the requests the server finished since `start`, in ms, with how many
        requests that was; None where the server keeps no such histogram."""
        after, out = self._read(), {}
        for figure, metric in SERVER_HISTOGRAMS.items():
            total, count = (after.get(f"{metric}_{part}", 0) - self.before.get(f"{metric}_{part}", 0)
                            for part in ("sum", "count"))  # fmt: skip
            known = f"{metric}_count" in after and f"{metric}_count" in self.before
            out[figure] = 1000 * total / count if known and count > 0 else None
            if known:
                out["requests"] = count
        return out


class StubView:
    """The stub's own times over a run (received, first and last chunk written, per request): mean TTFT and
    E2E as it saw them; it keeps no per-request TPOT."""

    def __init__(self, stub) -> None:
        self.stub = stub

    def start(self) -> None:
        self.stub.timings()  # drops what came before

    def means(self) -> dict:
        own = self.stub.timings()
        if not own:
            return {figure: None for figure in SERVER_HISTOGRAMS}
        return {
            "mean TTFT, ms": 1000 * sum(first - received for received, first, _ in own) / len(own),
            "mean TPOT, ms": None,
            "mean E2E, ms": 1000 * sum(last - received for received, _, last in own) / len(own),
            "requests": len(own),
        }


def observed(run, view) -> dict:
    """A client's figures from `run()`, with the server's own means over the same requests."""
    view.start()
    figures = run()
    figures["server"] = view.means()
    return figures


def ours(url, kind, requests, rate, seed) -> dict:
    # inf: every request at once (vllm bench serve's --request-rate inf), so both measure the server's
    # capacity; a finite rate's request throughput is the random schedule's as much as the server's.
    load = Load("concurrency", concurrency=len(requests)) if math.isinf(rate) else Load("poisson", rate, seed=seed)
    records, duration, health = run_load(url, kind, "model", requests, load)
    s = summarize(records, load, duration, client=health)
    pick = lambda p, q: getattr(p, q) if p is not None else None  # noqa: E731
    return {
        "achieved_rps": s.achieved_rps,
        "output_tokens_per_s": s.output_tokens_per_s,
        "ttft_mean_ms": pick(s.ttft_ms, "mean"),
        "ttft_p50_ms": pick(s.ttft_ms, "p50"),
        "tpot_mean_ms": pick(s.tpot_ms, "mean"),
        "e2e_mean_ms": pick(s.e2e_ms, "mean"),
        "completed": s.completed,
        "failed": s.failed,
        "errors": s.errors,
        "tokens_per_chunk": s.tokens_per_chunk,
        "unmeasured": s.unmeasured,
        "client": health.model_dump(),
    }


# What vllm bench serve's completions client puts in every request itself (with --ignore-eos); the rest of
# PagedBench's request body goes to it as --temperature and --extra-body, so the server gets the same work
# from both clients (a sampler, or token ids in every chunk, would otherwise differ by client).
SENT_BY_VLLM_BENCH = frozenset({"model", "prompt", "max_tokens", "stream", "stream_options", "ignore_eos"})


def same_request_fields(kind, requests) -> dict:
    """The fields of PagedBench's request bodies that vllm bench serve does not send by itself, as its
    arguments: {"temperature": ..., "extra_body": {...}}. Refused when a field differs between requests
    (vllm bench serve sends one extra body to all)."""
    extra = None
    for r in requests:
        body = kind.body("model", r)
        if not body.get("ignore_eos"):
            raise UserError("the cross-check needs ignore_eos in the body: vllm bench serve forces the length so")
        rest = {k: v for k, v in body.items() if k not in SENT_BY_VLLM_BENCH}
        if extra is not None and rest != extra:
            differ = sorted(k for k in rest.keys() | extra.keys() if rest.get(k) != extra.get(k))
            raise UserError(f"the request field(s) {', '.join(differ)} vary by request: vllm bench serve sends one set")
        extra = rest
    extra = dict(extra or {})
    fields = {"temperature": extra.pop("temperature", None), "extra_body": extra}
    return fields


def their_args(url, model_dir, dataset: str, n: int, rate, seed, fields: dict) -> list[str]:
    args = ["--backend", "vllm", "--base-url", url, "--endpoint", "/v1/completions", "--model", "model",
            "--tokenizer", str(model_dir), "--dataset-name", "custom", "--dataset-path", dataset,
            "--custom-output-len", "-1", "--skip-chat-template", "--disable-shuffle", "--num-prompts", str(n),
            "--request-rate", str(rate), "--seed", str(seed), "--ignore-eos",
            "--percentile-metrics", "ttft,tpot,itl,e2el"]  # fmt: skip
    if fields["temperature"] is not None:
        args += ["--temperature", str(fields["temperature"])]
    if fields["extra_body"]:
        args += ["--extra-body", json.dumps(fields["extra_body"])]
    return args


def theirs(url, model_dir, requests, rate, seed, fields: dict) -> dict:
    from vllm.benchmarks import serve as bench
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for r in requests:
            f.write(json.dumps({"prompt": r.prompt, "output_tokens": r.output_len}) + "\n")
    parser = FlexibleArgumentParser()
    bench.add_cli_args(parser)
    args = parser.parse_args(their_args(url, model_dir, f.name, len(requests), rate, seed, fields))
    out = bench.main(args)
    plain = {}
    for k, v in out.items():  # its figures come as numpy numbers among lists: keep the plain figures
        if isinstance(v, str) or (isinstance(v, numbers.Real) and not isinstance(v, bool)):
            plain[k] = v if isinstance(v, str) else (int(v) if isinstance(v, numbers.Integral) else float(v))
    return plain


def finite(value):
    """JSON has no NaN or Infinity: such a number is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def parse_rates(text: str) -> list[str]:
    rates = [r.strip() for r in text.split(",") if r.strip()]
    for r in rates:
        try:
            ok = r == "inf" or (float(r[:-1]) > 0 if r.endswith("x") else float(r) > 0)
        except ValueError:
            ok = False
        if not ok or r.lower() in ("nan", "nanx"):
            raise UserError(f"--rates {text!r}: each rate is requests per second, inf, or a fraction like 0.5x")
    if any(r.endswith("x") for r in rates) and (not rates or rates[0] != "inf"):
        raise UserError(f"--rates {text!r}: a fraction of the saturation (Fx) needs inf first, which measures it")
    return rates


def _mean(values):
    """The mean over the repeats; none where any repeat did not measure it (client-bound, not streamed): a
    figure of the runs left would stand for runs it does not cover."""
    return None if not values or None in values else sum(values) / len(values)


def compare_rate(url, kind, model_dir, requests, rate: float, seed: int, repeats: int, fields: dict, view) -> dict:
    mine_runs, vllm_runs = [], []
    mine_run = lambda: ours(url, kind, requests, rate, seed)  # noqa: E731
    vllm_run = lambda: theirs(url, model_dir, requests, rate, seed, fields)  # noqa: E731
    for k in range(repeats):
        if k % 2 == 0:
            mine_runs.append(observed(mine_run, view))
            vllm_runs.append(observed(vllm_run, view))
        else:
            vllm_runs.append(observed(vllm_run, view))
            mine_runs.append(observed(mine_run, view))
    mine, vllm = mine_runs[0], vllm_runs[0]
    rows = []
    print(f"  {'':28} {'PagedBench':>12} {'vllm bench':>12} {'':>9}   the server's own, under each", flush=True)
    for name, (key, theirs_key) in PAIRS.items():
        x, y = _mean([m[key] for m in mine_runs]), _mean([v.get(theirs_key) for v in vllm_runs])
        gap = (x - y) / y if x is not None and y else None
        row = {"figure": name, "pagedbench": x, "vllm_bench_serve": y, "difference": gap,
               "pagedbench_runs": [m[key] for m in mine_runs],
               "vllm_bench_serve_runs": [v.get(theirs_key) for v in vllm_runs]}  # fmt: skip
        row["verdict"] = verdict(gap, row["pagedbench_runs"], row["vllm_bench_serve_runs"])
        server = ""
        if name in SERVER_HISTOGRAMS:
            row["server_under_pagedbench"] = _mean([m["server"].get(name) for m in mine_runs])
            row["server_under_vllm_bench_serve"] = _mean([v["server"].get(name) for v in vllm_runs])
            server = "   " + " / ".join(
                f"{v:,.2f}" if v is not None else "—"
                for v in (row["server_under_pagedbench"], row["server_under_vllm_bench_serve"])
            )
        rows.append(row)
        shown = f"{gap:+.1%}" if gap is not None else "—"
        print(f"  {name:28} {x if x is not None else float('nan'):12,.2f} "
              f"{y if y is not None else float('nan'):12,.2f} {shown:>9}{server}", flush=True)  # fmt: skip
        print(f"  {'':28} {row['verdict']}", flush=True)
    gaps = [abs(r["difference"]) for r in rows if r["difference"] is not None]
    return {
        "rate": "inf" if math.isinf(rate) else rate,
        "rows": rows,
        "worst_difference": max(gaps) if gaps else None,
        "within_target": bool(gaps and len(gaps) == len(rows) and max(gaps) <= TARGET),
        "repeats": repeats,
        "pagedbench": mine,
        "vllm_bench_serve": vllm,
        "pagedbench_repeats": mine_runs[1:],
        "vllm_bench_serve_repeats": vllm_runs[1:],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", required=True)
    p.add_argument("--scenario", required=True, help="a vllm scenario of the suite: its workload and knobs")
    p.add_argument("--rates", default=None, help="comma-separated: req/s, inf, or Fx (a fraction of inf's rate)")
    p.add_argument("--rate", default=None, help="one rate (the same as --rates with one)")
    p.add_argument("--requests", type=int, default=None, help="requests per load (default: the workload's)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each client per rate, in alternating order")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--out", type=Path, required=True, help="the comparison, as JSON")
    p.add_argument("--stub", action="store_true", help="against PagedBench's instant stub server, not vLLM")
    p.add_argument("--itl-ms", type=float, default=2.0, help="with --stub: its gap between tokens (default 2)")
    a = p.parse_args(argv)
    if not 0 <= a.itl_ms <= 1000 or not math.isfinite(a.itl_ms):
        raise UserError(f"--itl-ms {a.itl_ms}: give 0 to 1,000")
    rates = parse_rates(a.rates or a.rate or "inf")
    if a.requests is not None and not 1 <= a.requests <= 100_000:
        raise UserError(f"--requests {a.requests}: give 1 to 100,000")
    if not 1 <= a.repeats <= 20:
        raise UserError(f"--repeats {a.repeats}: give 1 to 20")
    suite = load_suite(a.suite)
    s = pick_scenario(suite, "vllm", a.scenario)
    if a.requests is not None:
        spec = suite.workloads[s.workload].model_copy(update={"requests": a.requests})
        suite = suite.model_copy(update={"workloads": suite.workloads | {s.workload: spec}})
    model_dir, requests, settings = server_inputs(suite, s, "auto")  # vLLM places itself
    kind = load_server("vllm")
    fields = same_request_fields(kind, requests)
    comparison = {"kind": SERVE_CROSSCHECK_KIND, "schema_version": 1, "suite": suite.name, "scenario": s.name}
    comparison["server"] = f"PagedBench's stub, a token every {a.itl_ms:g} ms" if a.stub else "vllm serve"
    comparison |= {"requests": len(requests), "repeats": a.repeats, "target": TARGET}
    # What each client was told to put in its requests besides the prompt and length.
    comparison["request_fields"] = {"vllm_bench_serve": fields, "pagedbench": sorted(kind.body("model", requests[0]))}
    comparison["loads"] = []

    def save() -> None:
        checked = finite(comparison)
        ServeCrosscheck.model_validate(checked)  # what `pagedbench collect` will read it as
        write_atomic(a.out, json.dumps(checked, indent=1, allow_nan=False), replace=True)

    with contextlib.ExitStack() as servers:
        if a.stub:
            from bench.serving.capacity import StubServer

            stub = servers.enter_context(StubServer(a.itl_ms))
            url, view = stub.url, StubView(stub)
        else:
            url = servers.enter_context(serve(kind, model_dir, a.port, a.out.with_suffix(".server.log"), settings)).url
            view = VllmView(url)
        warm_up(url, kind, requests)
        run_load(url, kind, "model", requests, Load("concurrency", concurrency=len(requests)))  # largest shapes
        saturation = None
        for text in rates:
            if text == "inf":
                rate = float("inf")
            else:
                rate = float(text[:-1]) * saturation if text.endswith("x") else float(text)
            print(f"{'all at once' if math.isinf(rate) else f'{rate:,.1f} req/s'} ({text}), "
                  f"{len(requests)} requests:", flush=True)  # fmt: skip
            entry = compare_rate(url, kind, model_dir, requests, rate, a.seed, a.repeats, fields, view)
            entry["asked"] = text
            if math.isinf(rate):
                saturation = entry["vllm_bench_serve"].get("request_throughput")
            comparison["loads"].append(entry)
            save()  # after every load: a run cut short keeps the loads that finished
    save()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
