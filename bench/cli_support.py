"""The CLI's shared parts: error handling (exit codes), option types and the checks made before a run."""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from pathlib import Path

import click

from bench.errors import ResultWriteError, UserError


def usage_error(e: click.UsageError) -> None:
    """A mistake on the command line in one line, exit 2 (click would print the usage and a hint around it).
    A command given nothing gets its help, as click gives it."""
    if isinstance(e, getattr(click.exceptions, "NoArgsIsHelpError", ())):  # click >= 8.2
        raise e
    where = f" ({e.ctx.command_path} --help)" if e.ctx is not None else ""
    click.echo(f"Error: {' '.join(e.format_message().split())}{where}", err=True)
    sys.exit(2)


class Group(click.Group):
    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:  # the group's own options (pagedbench --nosuch)
            usage_error(e)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # a command's options, or no such command
            usage_error(e)
        except UserError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(2)
        except ResultWriteError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(3)
        except KeyboardInterrupt:
            # Outside a run's own handling (which records the scenario in flight), e.g. building a model.
            # The interrupt may have cut an import short (torch's, while a model is built): the exit hooks
            # such a module registered would fail on it, so the process ends here, its output flushed.
            click.echo("Interrupted.", err=True)
            hard_exit(130)


class Finite(click.FloatRange):
    """A float range that also refuses nan and inf (nan passes every comparison a range makes)."""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not math.isfinite(value):
            self.fail(f"{value} is not a finite number", param, ctx)
        return value


def suite_options(fn):
    """--suite and --model, shared by the commands that load a suite (also read from the environment)."""
    fn = click.option(
        "--model",
        default=None,
        envvar="PAGEDBENCH_MODEL",
        help="Override the suite's model: hub id, local directory or synthetic:<preset>. [env PAGEDBENCH_MODEL]",
    )(fn)
    return click.option(
        "--suite",
        "suite_name",
        required=True,
        envvar="PAGEDBENCH_SUITE",
        help="A built-in suite name (see `pagedbench list`) or a YAML file. [env PAGEDBENCH_SUITE]",
    )(fn)


def out_option(fn):
    """--out, the results directory of the commands that write results (also read from the environment)."""
    return click.option(
        "--out",
        type=click.Path(path_type=Path),
        default=Path("results"),
        show_default=True,
        envvar="PAGEDBENCH_OUT",
        help="Results directory; each run writes into OUT/<run-id>/. [env PAGEDBENCH_OUT]",
    )(fn)


def hard_exit(code: int) -> None:
    """End the process now, without the exit hooks, once its output is flushed."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def exit_now(code: int) -> None:
    """Exit now. A dead engine can leave non-daemon client threads that would block a normal exit for
    ever; every result is on disk already."""
    import threading

    lingering = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if not lingering:
        sys.exit(code)
    hard_exit(code)


def writable_file(path: Path, option: str) -> None:
    """A file that can be written at `path`: not a directory, its directory there (made) and writable."""
    if path.is_dir():
        raise UserError(f"{option} {path}: is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{option} {path}: cannot create {path.parent}: {e.strerror}") from None
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"{option} {path}: {path.parent} is not writable")


def fresh_run_id(out: Path, option: str, run_id: str | None, suffixes: tuple[str, ...] = ("",)) -> str:
    """A run id whose directories under `out` hold no results yet (a new timestamped one by default)."""
    from bench.results import new_run_id

    if run_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", run_id):
        raise UserError(
            f"--run-id {run_id!r}: use a plain directory name of letters, digits, '.', '_' and '-' "
            "(at most 100, not starting with '.' or '-')"
        )
    if out.exists() and not out.is_dir():
        raise UserError(f"{option} {out}: exists and is not a directory")
    run_id = run_id or new_run_id()
    for suffix in suffixes:
        run_dir = out / f"{run_id}{suffix}"
        if run_dir.is_dir() and any(run_dir.glob("*.json")):
            raise UserError(f"--run-id {run_id}: {run_dir} already holds results; results are never overwritten")
    return run_id
