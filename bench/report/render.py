"""Write report.md, report.html and results.csv from a Collection."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import datetime, timezone

from bench.report.collect import Collection, Group
from bench.report.cost import cost_table
from bench.report.fidelity import crosscheck_table
from bench.report.headline import headline
from bench.report.headline import title as headline_title
from bench.report.kvdtype import kv_dtype_table
from bench.report.pergpu import per_gpu_table
from bench.report.serving import serve_crosscheck_table, serving_tables
from bench.report.sharing import paper_table, sharing_table
from bench.report.tables import (
    Table,
    breakdown_table,
    environment_table,
    kv_table,
    performance_table,
    summary,
    time_table,
)
from bench.results.sections import KvPool


def group_title(g: Group) -> str:
    w = g.workload
    span = lambda d: f"{d.min}–{d.max} (mean {d.mean:.0f})"  # noqa: E731
    return (
        f"{g.model} — workload {w.name} `{g.workload_hash}`: {w.requests} requests, "
        f"prompt {span(w.prompt_len)} tokens"
        + (f" (the first {w.spec.shared_prefix_len} shared by all)" if w.spec.shared_prefix_len else "")
        + f", output {span(w.output_len)}, "
        f"temperature {w.temperature} — {g.gpu}"
    )


SERVING_FIGURES = "serving"  # the key of the serving charts among the figures (the groups' keys are hashes)
ANSWER_FIGURES = "answer"  # the answer's charts, one per compared group, shown with its sentences


def group_tables(g: Group, baseline: str) -> list[Table]:
    tables = (
        performance_table(g, baseline),
        kv_table(g),
        sharing_table(g),
        kv_dtype_table(g),
        breakdown_table(g),
        per_gpu_table(g),
    )
    return [t for t in tables if t is not None]


# --- Markdown ------------------------------------------------------------------------------------------


def _md_table(t: Table) -> list[str]:
    out = [f"### {t.title}", "", "| " + " | ".join(t.headers) + " |", "|" + "---|" * len(t.headers)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in t.rows]
    if t.note:
        out += ["", f"_{t.note}_"]
    return out + [""]


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def sources(c: Collection) -> str:
    """What the files were: each kind that occurs, with how many, and how many had problems."""
    kinds = [
        (len(c.results), "offline result", "offline results"),
        (len(c.serving), "serving result", "serving results"),
        (len(c.crosschecks), "fidelity cross-check", "fidelity cross-checks"),
        (len(c.serve_crosschecks), "serving cross-check", "serving cross-checks"),
        (len(c.notes), "file that is no result (named below)", "files that are no result (named below)"),
    ]
    found = [_count(n, one, many) for n, one, many in kinds if n]
    problems = f"{len(c.problems):,} with problems" if c.problems else "none with problems"
    return ", ".join(found or ["nothing readable"]) + "; " + problems


def detail_tables(c: Collection) -> list[Table]:
    """The Details tables, those the files gave anything for."""
    tables = (
        environment_table(c),
        time_table(c),
        crosscheck_table(c),
        serve_crosscheck_table(c),
        *serving_tables(c),
        paper_table(c),
        cost_table(c, c.gpu_hour_price),
    )
    return [t for t in tables if t is not None]


def markdown(c: Collection, baseline: str) -> str:
    out = [
        "# PagedBench report",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from {c.files} result files: {sources(c)}.",
        "",
        f"## {headline_title()}",
        "",
    ]
    lines, tables = headline(c)
    out += [f"- {s}" for s in lines] + [""]
    for t in tables:
        out += _md_table(t)
    out += ["## Details", ""]
    for t in detail_tables(c):
        out += _md_table(t)
    for g in c.groups:
        out += [f"## {group_title(g)}", "", "**What this shows** (computed from the results below):", ""]
        out += [f"- {s}" for s in summary(g, baseline)] + [""]
        for t in group_tables(g, baseline):
            out += _md_table(t)
    out += ["## Problems", ""]
    out += [f"- `{f}`: {reason}" for f, reason in c.problems] or ["None."]
    return "\n".join(out) + "\n"


# --- CSV -----------------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "run_id",
    "suite",
    "scenario",
    "stack",
    "mode",
    "repeat",
    "status",
    "model",
    "dtype",
    "workload_hash",
    "requests",
    "batch_size",
    "gpu",
    "elapsed_s",
    "output_tokens",
    "output_tokens_per_s",
    "requests_per_s",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "ttft_p50_ms",
    "tpot_p50_ms",
    "peak_process_used_mib",
    "peak_device_used_mib",
    "kv_reserved_bytes_peak",
    "kv_utilization",
    "kv_peak_usage",
    "energy_j",
    "energy_per_output_token_j",
    "error",
]


def csv_rows(c: Collection):
    for r in c.results:
        m, kv, mem, e = r.metrics, r.kv, r.memory, r.energy
        yield {
            "run_id": r.run_id,
            "suite": r.suite,
            "scenario": r.scenario,
            "stack": r.stack,
            "mode": r.mode,
            "repeat": r.repeat,
            "status": r.status,
            "model": r.model.spec if r.model else "",
            "dtype": r.model.dtype if r.model else "",
            "workload_hash": r.workload.hash,
            "requests": r.workload.requests,
            "batch_size": r.config.options.get("batch_size"),
            "gpu": r.environment.gpu.name if r.environment.gpu else "CPU",
            "elapsed_s": m.elapsed_s if m else "",
            "output_tokens": m.output_tokens if m else "",
            "output_tokens_per_s": m.output_tokens_per_s if m else "",
            "requests_per_s": m.requests_per_s if m else "",
            "latency_p50_ms": m.latency_ms.p50 if m else "",
            "latency_p90_ms": m.latency_ms.p90 if m else "",
            "latency_p99_ms": m.latency_ms.p99 if m else "",
            "ttft_p50_ms": m.ttft_ms.p50 if m and m.ttft_ms else "",
            "tpot_p50_ms": m.tpot_ms.p50 if m and m.tpot_ms else "",
            "peak_process_used_mib": mem.peak_process_used_mib if mem else "",
            "peak_device_used_mib": mem.peak_device_used_mib if mem else "",
            "kv_reserved_bytes_peak": kv.reserved_bytes_peak if kv else "",
            "kv_utilization": kv.utilization if kv else "",
            "kv_peak_usage": kv.peak_usage if isinstance(kv, KvPool) else "",
            "energy_j": e.joules if e and e.joules is not None else "",
            "energy_per_output_token_j": e.per_output_token_j if e and e.per_output_token_j is not None else "",
            "error": r.error or "",
        }


def csv_text(c: Collection) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in csv_rows(c):
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


# --- HTML ----------------------------------------------------------------------------------------------


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    note = f"<p class='note'>{html.escape(t.note)}</p>" if t.note else ""
    return f"<h3>{html.escape(t.title)}</h3><table><tr>{head}</tr>{body}</table>{note}"


def _inline_md(text: str) -> str:
    """Escaped text with the headline's **bold** and `code` spans as HTML."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1300px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right}td:first-child,th:first-child,td:nth-child(2){text-align:left}th{background:#f0f0f0}
.note{color:#666;font-size:12px}img{max-width:100%;border:1px solid #eee;margin:.5em 0}h2{margin-top:2em;
border-bottom:2px solid #ddd}li{margin:.2em 0}.answer{background:#f7fbff;border:1px solid #cfe3f7;padding:.2em 1em
.6em}.answer h2{margin-top:.6em}.answer li{font-size:15px}"""


def html_report(c: Collection, baseline: str, figures: dict[str, list[tuple[str, str]]]) -> str:
    """figures: group hash -> [(title, data URI)]."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>PagedBench report</title>"
        f"<style>{CSS}</style></head><body><h1>PagedBench report</h1>",
        f"<p>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from {c.files} result files: "
        f"{html.escape(sources(c))}.</p>",
    ]
    lines, tables = headline(c)
    parts.append(
        f"<section class='answer'><h2>{html.escape(headline_title())}</h2><ul>"
        + "".join(f"<li>{_inline_md(s)}</li>" for s in lines)
        + "</ul>"
        + "".join(f"<img alt='{html.escape(t)}' src='{uri}'>" for t, uri in figures.get(ANSWER_FIGURES, []))
        + "".join(_html_table(t) for t in tables)
        + "</section><h2>Details</h2>"
    )
    parts += [_html_table(t) for t in detail_tables(c)]
    for title, uri in figures.get(SERVING_FIGURES, []):
        parts.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='{uri}'>")
    for g in c.groups:
        parts.append(
            f"<h2>{html.escape(group_title(g))}</h2><p><b>What this shows</b> (computed from the "
            "results below):</p><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in summary(g, baseline)) + "</ul>"
        )
        parts += [_html_table(t) for t in group_tables(g, baseline)]
        for title, uri in figures.get(g.key, []):
            parts.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='{uri}'>")
    parts.append(
        "<h2>Problems</h2><ul>"
        + (
            "".join(f"<li><code>{html.escape(f)}</code>: {html.escape(r)}</li>" for f, r in c.problems)
            or "<li>None.</li>"
        )
        + "</ul>"
    )
    return "".join(parts) + "</body></html>"
