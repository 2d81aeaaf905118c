"""The collector: merge result files into a Markdown report, a self-contained HTML page and a CSV."""

from __future__ import annotations

from pathlib import Path

from bench.report.collect import Collection, collect


def write_report(results: Path, out: Path, baseline: str = "hf:sequential", plots: bool = True) -> Collection:
    from bench.report.render import html_report, markdown, write_csv

    c = collect(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown(c, baseline))
    write_csv(c, out / "results.csv")
    figures = {}
    if plots:
        from bench.report.plots import figures as make_figures

        figures = {g.workload_hash + g.model: make_figures(g) for g in c.groups}
    (out / "report.html").write_text(html_report(c, baseline, figures))
    return c
