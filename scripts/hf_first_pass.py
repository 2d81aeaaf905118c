"""Why HF's first pass over a padded batch is slow on a GPU, and what a setting of torch's changes.

On an H100 with torch 2.11, HF's warm-up of one batch took as long as two batches of the timed run. torch
sends scaled-dot-product attention with a padding mask to cuDNN first on Hopper (cuDNN >= 9.15), and
cuDNN builds and caches an execution plan for every new shape; every decode step of a padded batch has a
new key length. This script times, in one process per setting, the runner's own `generate_batch` (the
benchmark's code path, a device sync at every step) on the `sharing` suite's ShareGPT-shaped requests:

  pass a1: the first 64 requests, every row cut to --steps new tokens (new shapes);
  pass a2: the same batch again (every shape seen);
  pass b1: the next 64 requests (another prompt width: key lengths partly new);
  pass b2: that batch again.

Settings: `cudnn_attention: true` (torch's own choice: cuDNN first); `cudnn_attention: false` (the runner's
default: torch's memory-efficient kernel for a masked batch); `cudnn_attention: true` with
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True. For each pass: seconds, ms per step (p50, p90, p99, mean, max),
torch's peak allocated and reserved memory; for each setting, the attention backends enabled after the runner
loaded and the attention kernels a short profiled generate() launched. (The runs of
docs/results/h100-2026-12-07-sharing predate `cudnn_attention`: their settings were torch's defaults,
TORCH_CUDNN_SDPA_DEPRIORITIZED=1, which takes the same memory-efficient kernel, and expandable segments; their
step_ms names its p50 `median`.)

    python scripts/hf_first_pass.py --out FILE.json [--steps 256] [--rows 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.metrics import percentiles  # noqa: E402

SETTINGS = (  # name, environment, the scenario's cudnn_attention
    ("cudnn_attention: true", {}, True),
    ("cudnn_attention: false", {}, False),
    ("cudnn_attention: true, expandable segments", {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}, True),
)
ATTENTION = ("attn", "fmha", "cudnn", "flash", "efficient", "sdpa", "softmax")


def _pass(runner, batch, torch) -> dict:
    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    runner.hf.sync()
    t0 = time.perf_counter()
    _, _, steps, end, _, _ = runner.generate_batch(batch, t0)
    gaps = percentiles([(b - a) * 1000 for a, b in zip(steps, steps[1:])])
    return {
        "rows": len(batch),
        "width": max(r.prompt_len for r in batch),
        "steps": len(steps),
        "seconds": end,
        "first_step_ms": steps[0] * 1000 if steps else None,
        "step_ms": gaps.model_dump() if gaps else None,
        "torch_peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if gpu else None,
        "torch_peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20 if gpu else None,
    }


def _kernels(runner, batch, torch) -> dict[str, int]:
    """Attention-looking CUDA kernels of a 4-token generate() on a batch, by launch count."""
    from torch.profiler import ProfilerActivity, profile

    short = [replace(r, output_len=4) for r in batch]
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        runner.generate_batch(short, time.perf_counter())
    counts: dict[str, int] = {}
    for e in prof.events():
        name = e.name
        if e.device_type.name == "CUDA" and any(k in name.lower() for k in ATTENTION):
            counts[name[:120]] = counts.get(name[:120], 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:8])


def child(steps: int, rows: int, model: str | None, cudnn: bool) -> dict:
    import torch

    from bench.context import RunContext, RunOptions
    from bench.suite import load_suite

    suite = load_suite("sharing")
    if model:
        suite = suite.model_copy(update={"model": model})
    s = next(x for x in suite.scenarios if x.name == "hf-sharegpt-n1").model_copy(update={"cudnn_attention": cudnn})
    ctx = RunContext(suite, RunOptions(stack="hf", out=Path(tempfile.mkdtemp())), Path("first-pass"))
    try:
        runner, load = ctx.engine_for(ctx.prepare(s))
        w = ctx.workload(s.workload)
        runner.sampling = w.spec
        a, b = ([replace(r, output_len=steps) for r in w.requests[i : i + rows]] for i in (0, rows))
        out = {"load_s": load.get("load_s"), "sdpa_backends": ctx.environment.get("sdpa_backends")}
        out["passes"] = {
            name: _pass(runner, batch, torch) for name, batch in (("a1", a), ("a2", a), ("b1", b), ("b2", b))
        }
        try:
            out["attention_kernels"] = _kernels(runner, a, torch)
        except Exception as e:  # the profiler is a side reading: its failure loses no timing
            out["attention_kernels"] = f"{type(e).__name__}: {e}"
        return out
    finally:
        ctx.close_runner()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--model", help="instead of the suite's (a CPU check of the script)")
    ap.add_argument("--timeout", type=float, default=150.0, help="seconds a setting may take")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cudnn", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        json.dump(child(args.steps, args.rows, args.model, args.cudnn), sys.stdout)
        return
    report: dict = {"steps": args.steps, "rows": args.rows, "settings": {}}
    for name, setting, cudnn in SETTINGS:
        env = os.environ | setting
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--out",
            str(args.out),
            "--steps",
            str(args.steps),
            "--rows",
            str(args.rows),
        ]
        cmd += ["--model", args.model] if args.model else []
        cmd += ["--cudnn"] if cudnn else []
        t = time.perf_counter()
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
            entry = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-2000:]}
        except subprocess.TimeoutExpired:
            entry = {"error": f"over {args.timeout:g} s"}
        entry["wall_s"] = time.perf_counter() - t
        report["settings"][name] = entry
        args.out.write_text(json.dumps(report, indent=1))  # what finished is kept if a later setting is cut
        print(name, json.dumps(entry.get("passes", entry.get("error")))[:600], flush=True)


if __name__ == "__main__":
    main()
