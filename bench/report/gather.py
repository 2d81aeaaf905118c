"""Read result files into a Collection: groups that may be compared (same workload hash, same model).

Every *.json under the directory (through symbolic links) is one of: an offline result, a serving result
(`"kind": "serving"`), a cross-check (`"kind": "crosscheck"`, or `"serve-crosscheck"` from
scripts/serve_crosscheck.py), a file the tool's scripts write that is no
result (named in `notes`), or a problem: corrupt, truncated, unreadable, foreign, other-version, failed and
fake-runner files are listed with the reason; they never crash the collector and never vanish.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from bench.errors import UserError
from bench.report.collect import DEFAULT_BASELINE, Collection, groups_of
from bench.report.render import csv_rows, markdown
from bench.results import Result, ResultFileError, scan_results
from bench.results.crosscheck import CROSSCHECK_KIND, CrosscheckResult
from bench.results.serve_crosscheck import SERVE_CROSSCHECK_KIND, ServeCrosscheck
from bench.results.serving import SERVING_KIND, ServingResult
from bench.results.store import schema_problem

# Files the tool's own scripts write beside results: named as what they are, not read as results.
NOT_RESULTS = {
    "client-capacity": "the load generator's capacity against a stub server (pagedbench bench-client)",
    "environment": "the environment a run would record (pagedbench env --json)",
}
# `pagedbench env --json` files written before they said their kind have these keys.
_ENVIRONMENT_KEYS = {"pagedbench", "python", "platform", "packages"}


def collect(root: Path) -> Collection:
    if not root.exists():
        raise UserError(f"results directory {root} does not exist")
    if not root.is_dir():
        raise UserError(f"results directory {root} is not a directory")
    problems: list[tuple[str, str]] = []
    ok: list[Result] = []
    seen: dict[tuple, str] = {}
    files = 0
    crosschecks: list[CrosscheckResult] = []
    serving: list[ServingResult] = []
    serve_crosschecks: list[ServeCrosscheck] = []
    notes: list[tuple[str, str]] = []
    for path, item in scan_results(root):
        files += 1
        rel = str(path.relative_to(root))
        if isinstance(item, ResultFileError):
            data = item.data
            kind = data.get("kind") if isinstance(data, dict) and isinstance(data.get("kind"), str) else None
            if kind is None and isinstance(data, dict) and _ENVIRONMENT_KEYS <= data.keys():
                kind = "environment"
            typed = {
                CROSSCHECK_KIND: (CrosscheckResult, crosschecks),
                SERVING_KIND: (ServingResult, serving),
                SERVE_CROSSCHECK_KIND: (ServeCrosscheck, serve_crosschecks),
            }
            if kind in typed:
                model, into = typed[kind]
                read, why = _typed(model, data, f"{kind} result")
                if read is None:
                    problems.append((rel, why))
                    continue
                into.append(read)
                if getattr(read, "status", "ok") != "ok":
                    problems.append((rel, f"{kind} {read.status}: {read.error}"))
            elif kind in NOT_RESULTS:
                notes.append((rel, f"not a result: {NOT_RESULTS[kind]}"))
            elif isinstance(data, dict) and str(data.get("schema", "")).startswith("pagedbench-serving/"):
                problems.append((rel, f"a serving result of an older format ({data['schema']}): not read"))
            else:
                problems.append((rel, str(item)))
            continue
        key = (item.run_id, item.stack, item.scenario, item.repeat)
        if key in seen:
            problems.append(
                (rel, f"duplicate of {seen[key]} (same run, stack, scenario and repeat): not counted twice")
            )
            continue
        seen[key] = rel
        if not item.is_measurement:
            problems.append((rel, f"{item.stack} runner: not a measurement, no figures shown"))
            continue
        unreadable = _unreadable(item)
        if unreadable:
            problems.append((rel, unreadable))
            continue
        if item.status != "ok":
            problems.append((rel, f"{item.status}: {item.error}"))
        ok.append(item)
    if files == 0:
        raise UserError(f"no result files (*.json) under {root}")
    return Collection(
        groups_of(ok), problems, ok, files, crosschecks, serving, notes, serve_crosschecks=serve_crosschecks
    )


def _typed(model, data: dict, what: str):
    """A file of another kind through its schema (serving result, cross-check), or None and why not."""
    try:
        return model.model_validate(data), None
    except ValidationError as e:
        return None, f"{what} " + schema_problem(e)


def _unreadable(r: Result) -> str | None:
    """Why the report cannot show a schema-valid result (a free-form section holding a value of a type the
    report does not expect), or None. Rendering it alone is the test: every table and the CSV row."""
    try:
        alone = Collection(groups_of([r]), [], [r], 1)
        markdown(alone, DEFAULT_BASELINE)
        list(csv_rows(alone))
    except (TypeError, KeyError, AttributeError, ValueError, ArithmeticError, IndexError) as e:
        return f"a field holds a value of an unexpected type ({type(e).__name__}: {str(e)[:120]}): not shown"
    return None
