"""`pagedbench serve`: one stack's OpenAI-compatible server under a sweep of loads, from a suite's
scenario (its workload, and the knobs its server takes)."""

from __future__ import annotations

import click

from bench.cli_support import Finite, exit_now, fresh_run_id, out_option, suite_options
from bench.errors import UserError
from bench.serving.metrics import SLO_KEYS
from bench.stacks import servers


def parse_slos(values: tuple[str, ...]) -> dict[str, float]:
    slos = {}
    for v in values:
        key, equals, ms = v.partition("=")
        if key not in SLO_KEYS or not equals:
            raise UserError(f"--slo {v!r}: give KEY=MILLISECONDS, KEY one of {', '.join(SLO_KEYS)}")
        try:
            slos[key] = float(ms)
        except ValueError:
            raise UserError(f"--slo {v!r}: {ms!r} is not a number of milliseconds") from None
        if not 0 < slos[key] < float("inf"):
            raise UserError(f"--slo {v!r}: the limit must be a positive number of milliseconds")
    return slos


def loads_from(profile, rates, concurrency, burstiness, seed, plan=None):
    """The command line's loads, or else the suite's `serving` plan."""
    from bench.serving.schedule import Load, sweep

    if not rates and not concurrency:
        if plan is None:
            raise UserError(
                "give at least one --rate (requests per second) or --concurrency, or a suite with 'serving'"
            )
        profile, rates, concurrency, burstiness, seed = (
            plan.profile,
            plan.rates,
            plan.concurrency,
            plan.burstiness,
            plan.seed,
        )
    loads = sweep(rates, profile, seed, burstiness)
    return loads + [Load("concurrency", concurrency=c) for c in sorted(concurrency)]


def check_sweep_size(workload, loads: int) -> None:
    """Refuse a sweep whose result would hold more streamed chunks than `MAX_SWEEP_TOKENS` (each is a
    number in the result file): found before any server starts."""
    from bench.serving import MAX_SWEEP_TOKENS

    tokens = workload.num_requests * workload.output_len.upper * loads
    if tokens > MAX_SWEEP_TOKENS:
        raise UserError(
            f"{workload.num_requests:,} requests of up to {workload.output_len.upper:,} output tokens over {loads} "
            f"load(s) stream up to {tokens:,} tokens, over the {MAX_SWEEP_TOKENS:,} one serving result records; "
            "send fewer requests or loads"
        )


def _asks_for(value) -> bool:
    """Whether a scenario's setting asks for what it names: set, switched on, and not a split of one."""
    return value is True or value not in (None, False, 1)


def pick_scenario(suite, stack: str, name: str | None):
    """The named scenario of `stack`, or its only one; refused where it sets what the stack's server
    cannot do (a server started without it would measure something else)."""
    from bench.stacks import load_server

    mine = [x for x in suite.scenarios if x.stack == stack]
    found = mine[0] if name is None and len(mine) == 1 else next((x for x in mine if x.name == name), None)
    if found is None:
        names = ", ".join(x.name for x in mine) or "none"
        what = f"--scenario {name}: the suite has no {stack} scenario of that name" if name else "give --scenario"
        raise UserError(f"{what}; its {stack} scenarios: {names}")
    kind = load_server(stack)
    for key in kind.lacks:
        value = getattr(found, key, None)
        if _asks_for(value):
            raise UserError(f"scenario {found.name}: {kind.name} has no {key} (the scenario sets {value})")
    return found


def resolve(device: str) -> str:
    """auto: cuda where torch sees a GPU, else cpu; left to the server where torch is not installed."""
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


@click.command("serve")
@click.option("--stack", required=True, type=click.Choice(servers()), help="Whose server to run.")
@suite_options
@click.option("--scenario", default=None, help="The suite's scenario of that stack (default: its only one).")
@out_option
@click.option("--run-id", default=None, help="Results go to OUT/RUN_ID (default: a new timestamped id).")
@click.option("--port", type=click.IntRange(1024, 65535), default=8100, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--profile", type=click.Choice(["poisson", "constant", "gamma"]), default="poisson", show_default=True)
@click.option("--rate", "rates", type=Finite(min=0, min_open=True, max=1e6), multiple=True, help="req/s (repeatable).")
@click.option("--concurrency", type=click.IntRange(1, 100000), multiple=True, help="In flight at once (repeatable).")
@click.option("--burstiness", type=Finite(min=0, min_open=True, max=1e3), default=1.0, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--slo", "slo_args", multiple=True, help=f"KEY=MS for goodput, KEY one of {', '.join(SLO_KEYS)}.")
def serve_cmd(stack, suite_name, model, scenario, out, run_id, port, device, profile, rates, concurrency, **more):
    """Run a stack's OpenAI-compatible server under each load in turn and write one serving result."""
    from bench.results.sections import Environment
    from bench.serving.run import server_inputs, sweep, write
    from bench.serving.server import ServerDied, healthy
    from bench.stacks import load_server, recorded_packages
    from bench.suite import load_suite
    from bench.telemetry import environment

    slos = parse_slos(more["slo_args"])
    suite = load_suite(suite_name, model_override=model)
    loads = loads_from(profile, rates, concurrency, more["burstiness"], more["seed"], suite.serving)
    slos = (dict(suite.serving.slos) if suite.serving else {}) | slos
    s = pick_scenario(suite, stack, scenario)
    kind = load_server(stack)
    url = f"http://127.0.0.1:{port}"
    if healthy(url):  # before a run directory exists
        raise UserError(f"--port {port}: {url} already answers /health: another server is running there")
    check_sweep_size(suite.workloads[s.workload], len(loads))
    run_id = fresh_run_id(out, "--out", run_id)
    run_dir = out / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / f"{stack}-server.log").touch()
    except OSError as e:
        raise UserError(f"--out {out}: cannot write into {run_dir}: {e.strerror}") from None
    model_dir, requests, settings = server_inputs(suite, s, resolve(device))
    gpus = s.min_gpus() if settings["device"] != "cpu" else 0  # whose energy each load records
    click.echo(f"{kind.name}: {len(requests)} requests of {s.workload}, {len(loads)} load(s) ...", err=True)
    identity = {"run_id": run_id, "stack": stack, "suite": suite.name, "scenario": s.name, "model": suite.model}
    try:
        result = sweep(
            kind,
            model_dir,
            requests,
            loads,
            run_dir / f"{stack}-server.log",
            port,
            identity | {"workload": s.workload},
            settings,
            slos,
            progress=lambda line: click.echo(line, err=True),
            gpus=gpus,
        )
    except ServerDied as e:
        click.echo(f"Error: {e}", err=True)
        exit_now(1)
    packages = (*recorded_packages(), "aiohttp", "uvloop", "fastapi", "uvicorn")
    result.environment = Environment.model_validate(environment.collect(packages=packages))
    path = run_dir / f"serving-{stack}-{s.name}.json"
    write(result, path)
    click.echo(f"{result.status}: {len(result.loads)} load(s); result in {path}")
    if result.status != "ok":
        click.echo(f"  {result.error}", err=True)
    exit_now({"ok": 0, "interrupted": 130}.get(result.status, 1))
