"""Read result files into a Collection: groups that may be compared (same workload hash, same model).

Corrupt, truncated, foreign, other-version, failed and fake-runner files are listed as problems with the
reason; they never crash the collector and never vanish.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import UserError
from bench.files import UnreadableFile, read_json
from bench.report.collect import DEFAULT_BASELINE, Collection, groups_of, is_number
from bench.report.render import csv_rows, markdown
from bench.report.serving import serving_file
from bench.results import Result, ResultFileError, scan_results


def collect(root: Path) -> Collection:
    if not root.exists():
        raise UserError(f"results directory {root} does not exist")
    if not root.is_dir():
        raise UserError(f"results directory {root} is not a directory")
    problems: list[tuple[str, str]] = []
    ok: list[Result] = []
    seen: dict[tuple, str] = {}
    files = 0
    crosschecks: list[dict] = []
    serving: list[dict] = []
    for path, item in scan_results(root):
        files += 1
        rel = str(path.relative_to(root))
        if isinstance(item, ResultFileError):
            data = _json(path)
            check, served = _crosscheck(data), serving_file(data)
            if check is not None:
                crosschecks.append(check | {"file": rel})
            elif served is not None:
                serving.append(served | {"file": rel})
                if served["status"] != "ok":
                    problems.append((rel, f"serving {served['status']}: {served.get('error')}"))
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
    return Collection(groups_of(ok), problems, ok, files, crosschecks, serving)


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


def _json(path: Path):
    """A file that is no result, as JSON, or None when it is not readable JSON."""
    try:
        return read_json(path)
    except UnreadableFile:
        return None


def _crosscheck(data) -> dict | None:
    """A cross-check comparison (`"kind": "crosscheck"`) with the fields the report reads, or None."""
    if not isinstance(data, dict) or data.get("kind") != "crosscheck" or not isinstance(data.get("repeats"), list):
        return None
    if not all(isinstance(data.get(k), str) for k in ("stack", "scenario")):
        return None
    if not all(is_number(data.get(k)) for k in ("threshold", "mean_difference")):
        return None
    fields = ("difference", "plain_tokens_per_s", "pagedbench_tokens_per_s")
    if not all(isinstance(r, dict) and all(is_number(r.get(k)) for k in fields) for r in data["repeats"]):
        return None
    return data
