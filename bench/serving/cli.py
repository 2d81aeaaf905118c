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
        key, _, ms = v.partition("=")
        if key not in SLO_KEYS:
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
        if value not in (None, 1):
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
    from bench.serving.run import server_inputs, sweep, write
    from bench.serving.server import ServerDied
    from bench.stacks import load_server, recorded_packages
    from bench.suite import load_suite
    from bench.telemetry import environment

    slos = parse_slos(more["slo_args"])
    suite = load_suite(suite_name, model_override=model)
    loads = loads_from(profile, rates, concurrency, more["burstiness"], more["seed"], suite.serving)
    slos = (dict(suite.serving.slos) if suite.serving else {}) | slos
    s = pick_scenario(suite, stack, scenario)
    run_dir = out / fresh_run_id(out, "--out", run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    model_dir, requests, settings = server_inputs(suite, s, resolve(device))
    kind = load_server(stack)
    click.echo(f"{kind.name}: {len(requests)} requests of {s.workload}, {len(loads)} load(s) ...", err=True)
    try:
        result = sweep(
            kind,
            model_dir,
            requests,
            loads,
            run_dir / f"{stack}-server.log",
            port,
            settings,
            slos,
            progress=lambda line: click.echo(line, err=True),
        )
    except ServerDied as e:
        click.echo(f"Error: {e}", err=True)
        exit_now(1)
    result["environment"] = environment.collect(packages=(*recorded_packages(), "httpx", "fastapi", "uvicorn"))
    result |= {"stack": stack, "suite": suite.name, "scenario": s.name, "model": suite.model, "workload": s.workload}
    path = run_dir / f"serving-{stack}-{s.name}.json"
    write(result, path)
    click.echo(f"{result['status']}: {len(result['loads'])} load(s); result in {path}")
    if result["status"] != "ok":
        click.echo(f"  {result['error']}", err=True)
    exit_now(0 if result["status"] == "ok" else 1)
