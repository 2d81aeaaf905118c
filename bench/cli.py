"""The `pagedbench` command. User mistakes exit 2 with one clear message; a run with a failed scenario
exits 1 after finishing the others; an interrupted run exits 130."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

import click

from bench import __version__, interrupts
from bench.cli_support import Finite, Group, exit_now, fresh_run_id, out_option, suite_options, writable_file
from bench.errors import ResultWriteError, UserError
from bench.serving.capacity import bench_client
from bench.serving.cli import serve_cmd
from bench.stacks import STACKS, default_baseline
from bench.stacks import baseline as baseline_stack


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pagedbench")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging (tracebacks of failed scenarios).")
def main(verbose: bool) -> None:
    """PagedBench: what vLLM's PagedAttention buys over plain Hugging Face transformers, measured."""
    interrupts.install()
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)


@main.command()
@click.option("--stack", required=True, type=click.Choice(list(STACKS)), help="Which stack's scenarios to run.")
@suite_options
@out_option
@click.option(
    "--run-id",
    default=None,
    envvar="PAGEDBENCH_RUN_ID",
    help="Directory name for this run (default: UTC time + random suffix).",
)
@click.option("--scenario", "only", multiple=True, help="Run only these scenarios (repeatable).")
@click.option(
    "--device",
    type=click.Choice(["auto", "cuda", "cpu"]),
    default="auto",
    show_default=True,
    envvar="PAGEDBENCH_DEVICE",
    help="Where the stack runs (cuda: stop unless a GPU is visible). [env PAGEDBENCH_DEVICE]",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1, max=1000),
    default=None,
    help="Run every scenario N times [default: each scenario's own `repeats`, 1 unless the suite says].",
)
@click.option(
    "--sample-interval-ms",
    type=Finite(min=5, max=5000),
    default=50.0,
    show_default=True,
    help="Telemetry sampling interval.",
)
@click.option(
    "--busy-gpu",
    type=click.Choice(["warn", "refuse"]),
    default="warn",
    show_default=True,
    envvar="PAGEDBENCH_BUSY_GPU",
    help="When other processes hold GPU memory (their use would pollute the figures): warn, or refuse to run.",
)
@click.option(
    "--no-sampler",
    is_flag=True,
    help="No background sampling (no monitor process, no gauge thread; readings at phase boundaries only): "
    "to measure what the sampler costs.",
)
def run(stack, suite_name, model, out, run_id, only, device, repeats, sample_interval_ms, busy_gpu, no_sampler):
    """Run one stack's scenarios of a suite and write one result file per scenario."""
    from bench.harness import RunOptions, run_suite
    from bench.logcapture import tee_output
    from bench.suite import load_suite

    suite = load_suite(suite_name, model_override=model)
    opts = RunOptions(
        stack=stack,
        out=out,
        device=device,
        repeats=repeats,
        only=tuple(only),
        sample_interval_ms=sample_interval_ms,
        run_id=run_id,
        busy_gpu=busy_gpu,
        sampler=not no_sampler,
    )
    opts.run_id = fresh_run_id(out, "--out", run_id)
    run_dir = out / opts.run_id
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / f"{stack}.log").touch()
    except OSError as e:
        raise UserError(f"--out {out}: cannot write into {run_dir}: {e.strerror}") from None
    say = lambda msg: click.echo(msg, err=True)  # noqa: E731
    t = time.perf_counter()
    try:
        with tee_output(run_dir / f"{stack}.log"):
            summary = run_suite(suite, opts, progress=say)
    except UserError:
        # Found before anything ran (a workload longer than the model allows, say): leave nothing behind.
        if created and not any(run_dir.glob("*.json")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    ok = sum(r.status == "ok" for r in summary.results)
    failed = [r for r in summary.results if r.status != "ok"]
    click.echo(f"{ok}/{len(summary.results)} scenarios ok in {time.perf_counter() - t:.0f} s; results in {run_dir}")
    for r in failed:
        click.echo(f"  {r.scenario}: {r.status}: {r.error}", err=True)
    exit_now(summary.exit_code)


@main.command()
@suite_options
def prepare(suite_name, model):
    """Build (synthetic) or download (hub) the suite's model into the cache, so runs need no network."""
    from bench.context import materialize
    from bench.models import parse_model
    from bench.suite import load_suite

    suite = load_suite(suite_name, model_override=model)
    path = materialize(parse_model(suite.model))
    click.echo(f"{suite.model}: {path}")


@main.command("crosscheck")
@click.option("--stack", required=True, type=click.Choice([n for n, spec in STACKS.items() if spec.crosscheck]))
@suite_options
@click.option("--scenario", required=True, help="The scenario to check (fixed-batch HF modes or vLLM).")
@click.option("--repeats", type=click.IntRange(min=1, max=1000), default=3, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option(
    "--overhead/--no-overhead",
    default=True,
    show_default=True,
    help="Also run PagedBench with its NVML sampler off, interleaved, to measure what the sampler costs.",
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the comparison as JSON here.")
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write PagedBench's runs here as ordinary results (the report then shows them).",
)
@click.option("--run-id", default=None, help="Run id of those results (default: a new timestamped id).")
def crosscheck_(stack, suite_name, model, scenario, repeats, device, overhead, out, results, run_id):
    """Compare PagedBench's throughput with a minimal hand-timed loop on the same engine and workload.
    Exit 1 when they disagree by more than 3 % or return different token counts."""
    from bench.crosscheck import crosscheck
    from bench.errors import CrosscheckFailed
    from bench.results.store import write_atomic
    from bench.suite import load_suite

    suite = load_suite(suite_name, model_override=model)
    if results is not None:
        run_id = fresh_run_id(results, "--results", run_id, ("", "-no-sampler"))
    if out is not None:
        writable_file(out, "--out")  # before minutes of measurement, not after

    def save(report) -> None:
        if out is not None:
            try:
                write_atomic(out, report.model_dump_json(indent=1), replace=True)
            except OSError as e:
                raise ResultWriteError(f"--out {out}: cannot write the comparison: {e.strerror or e}") from None

    try:
        report = crosscheck(
            suite,
            stack,
            scenario,
            repeats,
            device,
            overhead=overhead,
            results=results,
            run_id=run_id,
            progress=lambda m: click.echo(m, err=True),
            checkpoint=save,
        )
    except CrosscheckFailed as e:
        kept = f"; the repeats that finished are in {out}" if out is not None and out.exists() else ""
        click.echo(f"Error: {e}{kept}", err=True)
        exit_now(1)
    save(report)
    ci = report.difference_ci95
    click.echo(
        f"{stack} {scenario}: PagedBench vs plain loop {report.mean_difference:+.2%}"
        + (f" ± {ci:.2%} (95 % CI)" if ci is not None else "")
        + f" over {repeats} repeats: {report.verdict} at ±{report.threshold:.0%}; "
        f"tokens match: {report.tokens_match}"
    )
    if report.pagedbench_cv is not None:
        click.echo(f"PagedBench throughput CV over {repeats} repeats: {report.pagedbench_cv:.2%}")
    if overhead:
        click.echo(
            f"NVML sampler every {report.sample_interval_ms:g} ms costs {report.sampler_overhead:+.2%} "
            f"of throughput (spread {report.sampler_overhead_spread:.2%})"
        )
    if not report.tokens_match or report.verdict == "disagrees":
        exit_now(1)
    exit_now(0 if report.verdict == "agrees" else 3)


@main.command("collect")
@click.argument("results", type=click.Path(path_type=Path), default=Path("results"))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("report"),
    show_default=True,
    help="Directory for report.md, report.html and results.csv.",
)
@click.option(
    "--baseline",
    default=default_baseline(),
    show_default=True,
    help="Row the ratios refer to, as stack:mode or stack:scenario (falls back to the first HF row).",
)
@click.option("--no-plots", is_flag=True, help="Skip the charts (no matplotlib needed).")
@click.option("--strict", is_flag=True, help="Exit 1 when any file had a problem (failed, corrupt, foreign, ...).")
@click.option(
    "--gpu-hour-price",
    type=Finite(min=0, min_open=True, max=1e6),
    default=None,
    envvar="PAGEDBENCH_GPU_HOUR_PRICE",
    help="The price of one GPU-hour, in any currency: the report adds what a million output tokens cost.",
)
def collect_(results, out, baseline, no_plots, strict, gpu_hour_price):
    """Merge every result file under RESULTS into a report (Markdown, HTML with charts, CSV)."""
    from bench.report import write_report
    from bench.report.collect import named_row
    from bench.report.render import sources

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    stack, _, which = baseline.partition(":")
    if stack not in STACKS or not which:
        raise UserError(f"--baseline {baseline!r}: give STACK:MODE or STACK:SCENARIO, STACK one of {', '.join(STACKS)}")
    c = write_report(results, out, baseline, plots=not no_plots, gpu_hour_price=gpu_hour_price)
    click.echo(
        f"{c.files:,} file(s): {sources(c).replace('named below', 'named after this')}. "
        f"Written: {out / 'report.md'}, {out / 'report.html'}, {out / 'results.csv'}"
    )
    for f, reason in c.problems:
        click.echo(f"  problem: {f}: {reason}", err=True)
    for f, what in c.notes:
        click.echo(f"  note: {f}: {what}", err=True)
    if any(g.rows for g in c.groups) and not any(named_row(g, baseline) for g in c.groups):
        click.echo(f"  note: --baseline {baseline}: no such row; the ratios refer to each workload's first "
                   f"{baseline_stack().label} row", err=True)  # fmt: skip
    sys.exit(1 if strict and c.problems else 0)


@main.command()
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("candidate", type=click.Path(path_type=Path))
@click.option("--max-regression", default="5%", show_default=True, help="Allowed change in the worse direction.")
@click.option(
    "--min-run-s",
    type=Finite(min=0, max=86400),
    default=None,
    help="Timed runs shorter than this are too noisy to judge: a change beyond the threshold on one is not "
    "compared (and fails the gate unless --allow-missing). [default: 30, the report's threshold for a run too "
    "short to trust]",
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help="Pass although some baseline scenarios or loads could not be compared (missing, failed, unreadable, "
    "a different workload, not measured, too short to judge); they are still listed.",
)
def compare(baseline, candidate, max_regression, min_run_s, allow_missing):
    """Exit 1 when a metric of CANDIDATE regresses beyond the threshold against BASELINE (same workload, GPU),
    or when a baseline scenario could not be compared in CANDIDATE."""
    from bench.report.collect import SHORT_RUN_S
    from bench.report.compare import compare as run_compare
    from bench.report.compare import gate, parse_threshold

    threshold = parse_threshold(max_regression)
    comparison = run_compare(baseline, candidate)
    lines, failed = gate(comparison, threshold, SHORT_RUN_S if min_run_s is None else min_run_s, allow_missing)
    for line in lines:
        click.echo(line)
    sys.exit(1 if failed else 0)


@main.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json):
    """Built-in suites, synthetic model presets and stacks."""
    from bench.models.presets import PRESETS
    from bench.suite import builtin_suites, engine_plan, engine_starts, load_suite

    suites = {}
    for name in builtin_suites():
        s = load_suite(name)
        suites[name] = {
            "model": s.model,
            "description": s.description,
            "scenarios": [x.name for x in s.scenarios],
            "engines": {k: [[x.name for x in g] for g in v] for k, v in engine_plan(s).items()},
            "engine_starts": engine_starts(s),
        }
    data = {
        "suites": suites,
        "presets": {p.name: p.description for p in PRESETS.values()},
        "stacks": {r.name: {"modes": list(r.modes), "description": r.description} for r in STACKS.values()},
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo("Suites:")
    for name, s in suites.items():
        click.echo(f"  {name:12} {s['model']:24} {s['description']}")
        for line in s["engine_starts"]:
            click.echo(f"  {'':12} {line}")
    click.echo("Synthetic presets (--model synthetic:<preset>):")
    for name, d in data["presets"].items():
        click.echo(f"  {name:12} {d}")
    click.echo("Stacks:")
    for name, r in data["stacks"].items():
        click.echo(f"  {name:6} modes: {', '.join(r['modes'])}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def env(as_json):
    """The environment a run would record: GPU, driver, CUDA, versions, git revision."""
    from bench.stacks import recorded_packages
    from bench.telemetry.environment import collect

    data = collect(packages=recorded_packages())
    if as_json:
        click.echo(json.dumps({"kind": "environment"} | data, indent=2, default=str))
        return
    gpu = data.get("gpu") or {}
    rows = [
        ("GPU", f"{gpu.get('name')} ({gpu.get('uuid')})" if gpu else "none (no NVIDIA device/driver visible)"),
        ("Driver / CUDA", f"{gpu.get('driver')} / {gpu.get('cuda_driver')}" if gpu else "-"),
        ("GPU memory", f"{gpu['memory_total_mib']:,.0f} MiB" if gpu.get("memory_total_mib") else "-"),
        ("Other GPU processes", str(len(data.get("gpu_processes_before") or []))),
        ("Python", data["python"]),
        ("CPU", f"{data['cpu']} x{data['cpu_count']}"),
        ("Host memory", f"{data['host_memory_mib']:,.0f} MiB"),
        ("Git", f"{data['git'].get('sha')}{' (dirty)' if data['git'].get('dirty') else ''}"),
        ("Image", data.get("image") or "-"),
        ("Settings", " ".join(f"{k}={v}" for k, v in data["settings"].items()) or "-"),
    ] + [(k, v) for k, v in data["packages"].items()]
    for k, v in rows:
        click.echo(f"{k:20} {v}")


@main.command()
@click.option(
    "--interval", type=Finite(min=0.1, max=3600), default=1.0, show_default=True, help="Seconds between rows."
)
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N rows (default: until Ctrl-C).")
def monitor(interval, count):
    """Live GPU memory, utilisation and power (the tutorial's NVML monitor)."""
    from bench.telemetry.gpu import Gpu

    gpu = Gpu()
    if not gpu.available:
        raise UserError("no NVIDIA device visible through NVML (is the driver installed and the GPU passed in?)")
    info = gpu.info()
    click.echo(f"{info['name']}  {info['memory_total_mib']:,.0f} MiB  driver {info['driver']}")
    click.echo(f"{'time':>8} {'used MiB':>10} {'used %':>7} {'util %':>7} {'power W':>8} {'procs':>6}")
    t0, n = time.monotonic(), 0
    try:
        while count is None or n < count:
            r = gpu.read()
            click.echo(
                f"{time.monotonic() - t0:8.1f} {r.used_mib:10,.0f} {100 * r.used_mib / r.total_mib:7.1f} "
                f"{r.util_pct if r.util_pct is not None else float('nan'):7.0f} "
                f"{r.power_w if r.power_w is not None else float('nan'):8.1f} {len(gpu.processes()):6d}"
            )
            n += 1
            if count is None or n < count:
                time.sleep(interval)
    except KeyboardInterrupt:
        pass


main.add_command(serve_cmd)  # `pagedbench serve`, in the serving package
main.add_command(bench_client)  # `pagedbench bench-client`: the load generator's own capacity

if __name__ == "__main__":
    main()
