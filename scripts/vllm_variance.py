"""Where vLLM's run-to-run variance comes from.

Runs the plain `LLM.generate` of one scenario N times on one engine (as `pagedbench crosscheck`'s plain arm
does) and records for every run, next to its elapsed time:
  - GPU-busy seconds: NVML utilisation, read by PagedBench's sampler (its monitor process), times the run's
    length;
  - engine steps: the count of vLLM's `vllm:iteration_tokens_total` histogram;
  - time in Python's garbage collector, per process (the engine core included), from a `gc.callbacks` hook
    that a `sitecustomize` module installs in every Python process started with this script's PYTHONPATH;
  - CPU seconds and context switches of every thread of the engine-core process;
  - with --profile-ms N, the engine core's main-thread Python stack sampled every N ms (a thread of the
    same hook; it takes the interpreter lock at each sample, so it slows that loop a little, evenly).

    python scripts/vllm_variance.py [--suite default] [--scenario vllm-sustained] [--runs 6] --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Installed in every Python process of the run: cumulative GC seconds and collections per generation,
# appended to $PB_GC_DIR/gc-<pid>.jsonl at most every 0.2 s (only when a collection happens) and at exit.
SITECUSTOMIZE = """
import atexit, gc, json, os, sys, time
_dir = os.environ.get("PB_GC_DIR")
if _dir:
    _state = {"start": 0.0, "gc_s": 0.0, "gen2_s": 0.0, "n": [0, 0, 0], "written": 0.0}
    _path = os.path.join(_dir, "gc-%d.jsonl" % os.getpid())

    def _write():
        title = ""
        try:
            title = open("/proc/self/comm").read().strip()
        except OSError:
            pass
        with open(_path, "a") as f:
            f.write(json.dumps({"t": time.monotonic(), "comm": title, "gc_s": _state["gc_s"],
                                "gen2_s": _state["gen2_s"], "collections": _state["n"]}) + "\\n")

    def _callback(phase, info):
        if phase == "start":
            _state["start"] = time.perf_counter()
            return
        spent = time.perf_counter() - _state["start"]
        _state["gc_s"] += spent
        _state["n"][info["generation"]] += 1
        if info["generation"] == 2:
            _state["gen2_s"] += spent
        now = time.monotonic()
        if now - _state["written"] > 0.2:
            _state["written"] = now
            _write()

    gc.callbacks.append(_callback)
    atexit.register(_write)

_every = float(os.environ.get("PB_PROFILE_MS") or 0) / 1000
if _dir and _every:
    import collections, threading

    def _profile():
        # Only in vLLM's engine core, which names itself once it has started.
        for _ in range(600):
            time.sleep(1.0)
            try:
                title = open("/proc/self/comm").read().strip()
            except OSError:
                return
            if title.startswith("VLLM::EngineCor"):
                break
        else:
            return
        main = threading.main_thread().ident
        path = os.path.join(_dir, "profile-%d.jsonl" % os.getpid())
        counts, last = collections.Counter(), time.monotonic()
        while True:
            time.sleep(_every)
            frame, names = sys._current_frames().get(main), []
            while frame is not None and len(names) < 4:
                names.append("%s:%s" % (os.path.basename(frame.f_code.co_filename), frame.f_code.co_name))
                frame = frame.f_back
            counts[" < ".join(names)] += 1
            now = time.monotonic()
            if now - last >= 1.0:
                with open(path, "a") as f:
                    f.write(json.dumps({"t": now, "counts": counts}) + "\\n")
                counts, last = collections.Counter(), now

    threading.Thread(target=_profile, name="pb-profile", daemon=True).start()
"""


def profile_between(gc_dir: Path, t0: float, t1: float, top: int = 25) -> dict:
    """The engine core's sampled main-thread stacks (innermost four frames) between t0 and t1: sample
    counts of the most frequent stacks and the total."""
    counts: dict[str, int] = {}
    for path in gc_dir.glob("profile-*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if t0 < row["t"] <= t1:
                for stack, n in row["counts"].items():
                    counts[stack] = counts.get(stack, 0) + n
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return {"samples": sum(counts.values()), "top": dict(ranked[:top])}


def gc_at(gc_dir: Path, t: float) -> dict[int, dict]:
    """Each process's cumulative GC figures as last written at or before monotonic time `t`."""
    found: dict[int, dict] = {}
    for path in gc_dir.glob("gc-*.jsonl"):
        pid = int(path.stem.split("-")[1])
        last = None
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["t"] <= t:
                last = row
        if last is not None:
            found[pid] = last
    return found


def thread_times(pids: set[int]) -> dict[str, dict]:
    import psutil

    out = {}
    for pid in pids:
        try:
            p = psutil.Process(pid)
            out[str(pid)] = {
                "name": p.name(),
                "threads": {t.id: t.user_time + t.system_time for t in p.threads()},
                "ctx": p.num_ctx_switches()._asdict(),
            }
        except psutil.Error:
            pass
    return out


def steps(llm) -> dict[str, float]:
    """Counters read between runs (never during one)."""
    values: dict[str, float] = {}
    for m in llm.get_metrics():
        if m.name == "vllm:iteration_tokens_total" and hasattr(m, "count"):
            values["steps"] = values.get("steps", 0.0) + float(m.count)
            values["step_tokens"] = values.get("step_tokens", 0.0) + float(m.sum)
        elif m.name in ("vllm:num_preemptions", "vllm:prompt_tokens", "vllm:generation_tokens") and hasattr(m, "value"):
            values[m.name] = values.get(m.name, 0.0) + float(m.value)
    return values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="default")
    ap.add_argument("--scenario", default="vllm-sustained")
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--profile-ms", type=float, default=0.0, help="sample the engine core's stack every N ms")
    args = ap.parse_args()

    gc_dir = Path(tempfile.mkdtemp(prefix="pb-gc-"))
    site = Path(tempfile.mkdtemp(prefix="pb-site-"))
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    os.environ["PB_GC_DIR"] = str(gc_dir)
    os.environ["PB_PROFILE_MS"] = str(args.profile_ms)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    exec(SITECUSTOMIZE, {})  # this process too: it started before PYTHONPATH named the hook

    from bench.context import RunContext, RunOptions
    from bench.crosscheck import scenario_for, start_engine
    from bench.suite import load_suite
    from bench.telemetry.sampler import Sampler

    suite = load_suite(args.suite)
    ctx = RunContext(suite, RunOptions(stack="vllm", out=Path("."), device="auto"), Path("variance"))
    s, w, runner, load = start_engine(ctx, scenario_for(suite, "vllm", args.scenario))
    runner.warm_up(w.warmup[: s.warmup_requests], w.requests, w.spec)
    engine_pids = set(runner.engine_pids)

    runs = []
    try:
        for i in range(args.runs):
            before_steps, before_threads = steps(runner.llm), thread_times(engine_pids)
            t0 = time.monotonic()
            with Sampler(interval_ms=100, gpu=ctx.gpu) as sampler:  # NVML from its monitor process
                tokens, elapsed = runner.plain_run(w.requests, w.spec)
            t1 = time.monotonic()
            after_steps, after_threads = steps(runner.llm), thread_times(engine_pids)
            time.sleep(0.5)  # let the GC hook write past the run's end
            g0, g1 = gc_at(gc_dir, t0), gc_at(gc_dir, t1 + 0.25)
            zero = {"gc_s": 0.0, "gen2_s": 0.0, "collections": [0, 0, 0]}
            gc_runs = {
                str(pid): {
                    "comm": end["comm"],
                    "gc_s": end["gc_s"] - g0.get(pid, zero)["gc_s"],
                    "gen2_s": end["gen2_s"] - g0.get(pid, zero)["gen2_s"],
                    "collections": [a - b for a, b in zip(end["collections"], g0.get(pid, zero)["collections"])],
                }
                for pid, end in g1.items()
            }
            util = [x.gpu_util_pct for x in sampler.samples if x.gpu_util_pct is not None]
            threads = {}
            for pid, after in after_threads.items():
                before = before_threads.get(pid, {"threads": {}, "ctx": {}})
                busy = {tid: cpu - before["threads"].get(tid, 0.0) for tid, cpu in after["threads"].items()}
                threads[pid] = {
                    "name": after["name"],
                    "thread_cpu_s": sorted((round(v, 2) for v in busy.values() if v > 0.05), reverse=True),
                    "ctx_switches": {k: after["ctx"][k] - before["ctx"].get(k, 0) for k in after["ctx"]},
                }
            row = {
                "run": i,
                "tokens": tokens,
                "elapsed_s": elapsed,
                "tokens_per_s": tokens / elapsed,
                "gpu_util_mean_pct": statistics.fmean(util) if util else None,
                "gpu_busy_s": statistics.fmean(util) / 100 * elapsed if util else None,
                "engine": {k: after_steps.get(k, 0.0) - before_steps.get(k, 0.0) for k in after_steps},
                "gc": gc_runs,
                "engine_threads": threads,
            }
            if args.profile_ms:
                row["engine_profile"] = profile_between(gc_dir, t0, t1)
            runs.append(row)
            engine_gc = sum(v["gc_s"] for pid, v in gc_runs.items() if int(pid) in engine_pids)
            print(
                f"run {i}: {elapsed:.1f} s, {tokens / elapsed:,.0f} tok/s, GPU busy {row['gpu_busy_s'] or 0:.1f} s, "
                f"steps {row['engine'].get('steps', 0):.0f}, engine-core GC {engine_gc:.2f} s",
                flush=True,
            )
            args.out.write_text(
                json.dumps(
                    {
                        "scenario": args.scenario,
                        "load": load,
                        "engine_pids": sorted(engine_pids),
                        "environment": ctx.environment,
                        "runs": runs,
                    },
                    indent=1,
                )
            )
    finally:
        ctx.close_runner()
    return 0


if __name__ == "__main__":
    from bench.errors import UserError

    try:
        sys.exit(main())
    except UserError as e:  # a suite or scenario that does not exist, a workload that does not fit
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
