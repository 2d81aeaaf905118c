"""The collector: merge result files into a Markdown report, a self-contained HTML page and a CSV."""

from __future__ import annotations

import fcntl
from pathlib import Path

from bench.errors import ResultWriteError, UserError
from bench.report.collect import DEFAULT_BASELINE, Collection
from bench.report.gather import collect
from bench.report.render import ANSWER_FIGURES, SERVING_FIGURES
from bench.results.store import write_atomic


def write_report(
    results: Path, out: Path, baseline: str = DEFAULT_BASELINE, plots: bool = True, gpu_hour_price: float | None = None
) -> Collection:
    """Write report.md, results.csv and report.html into `out`. Each file is replaced whole (a reader sees
    the old one or the new one), and the three are written under a lock, so that two collectors into one
    directory never leave files of different inputs side by side. A write that fails is ResultWriteError,
    saying which files were written. Where no file is a result it can show, it writes nothing: UserError."""
    from bench.report.render import csv_text, html_report, markdown

    c = collect(results)
    if not c.readable:
        why = [*c.problems, *c.notes]
        first = f"{why[0][0]}: {why[0][1]}" + (f"; and {len(why) - 1:,} more" if len(why) > 1 else "")
        raise UserError(f"no file under {results} is a result PagedBench can read ({first}); no report written")
    c.gpu_hour_price = gpu_hour_price
    figures = {}
    if plots:
        from bench.report.answer_chart import answer
        from bench.report.plots import figures as make_figures
        from bench.report.serving_plots import serving_figures

        figures = {g.key: make_figures(g) for g in c.groups}
        figures[SERVING_FIGURES] = serving_figures(c.serving)
        figures[ANSWER_FIGURES] = [x for x in map(answer, c.groups) if x is not None]
    texts = {
        "report.md": markdown(c, baseline),
        "results.csv": csv_text(c),
        "report.html": html_report(c, baseline, figures),
    }
    written: list[str] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / ".pagedbench-report.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for name, text in texts.items():
                write_atomic(out / name, text, replace=True)
                written.append(name)
    except OSError as e:
        kept = f"; written: {', '.join(written)}" if written else "; nothing was written"
        raise ResultWriteError(f"cannot write the report into {out}: {e.strerror or e}{kept}") from None
    return c
