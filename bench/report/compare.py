"""Regression gate: compare a candidate results directory against a baseline, row by row.

Rows are matched on (workload hash, model, GPU name, stack, scenario); a metric regresses when it moves the
wrong way by more than the threshold, beyond the noise of the repeats, on runs long enough to trust.
Nothing is compared across workloads or GPUs.

The gate fails closed: every baseline scenario (and serving load) must be found, readable, ok and
comparable in the candidate. One that is not (missing, failed, unreadable, a different workload, a figure
not measured, a change too short to judge) fails the gate with its reason, unless the user allows it. The
baseline says what is gated: a scenario that failed there, or a file of it that cannot be read, is named
and gates nothing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import UserError
from bench.report.collect import Collection, Row, Stat
from bench.report.gather import collect

# metric -> True when higher is better
METRICS = {
    "output_tokens_per_s": True,
    "requests_per_s": True,
    "latency_p50_ms": False,
    "latency_p99_ms": False,
    "peak_memory_mib": False,
}
# The same for each load of a `pagedbench serve` result (its figures are single values per load).
SERVING_METRICS = {
    "completed_share": True,
    "achieved_rps": True,
    "output_tokens_per_s": True,
    "goodput_rps": True,
    "ttft_p99_ms": False,
    "tpot_p99_ms": False,
}


@dataclass
class Delta:
    """One metric of one (workload, model, GPU, stack, scenario) row, baseline against candidate. Repeats on
    either side (`--repeats`, or several runs of the scenario in one directory) are compared as a
    distribution: the mean, with the 95 % confidence interval of the change."""

    key: tuple
    metric: str
    base: Stat
    cand: Stat
    shortest_s: float  # the shortest timed run on either side

    @property
    def change(self) -> float:
        return (self.cand.mean - self.base.mean) / self.base.mean if self.base.mean else 0.0

    @property
    def ci95(self) -> float | None:
        """Half-width of the change's 95 % interval, relative to the baseline; None when neither side repeats."""
        widths = [s.ci95 for s in (self.base, self.cand) if s.ci95 is not None]
        if not widths or not self.base.mean:
            return None
        return math.sqrt(sum(w * w for w in widths)) / abs(self.base.mean)

    def verdict(self, threshold: float, min_run_s: float) -> str:
        """ "ok"; "regression" (worse beyond the threshold, beyond the noise of the repeats); "inconclusive"
        (worse beyond it, but within that noise); "too short" (worse beyond it on a run too short to trust)."""
        higher_is_better = SERVING_METRICS if self.key[0] == "serving" else METRICS
        worse = -self.change if higher_is_better[self.metric] else self.change
        if worse <= threshold:
            return "ok"
        if self.shortest_s < min_run_s:
            return "too short"
        if self.ci95 is not None and worse - self.ci95 <= threshold:
            return "inconclusive"
        return "regression"


def parse_threshold(text: str) -> float:
    t = text.strip()
    if not t.endswith("%"):
        raise UserError(
            f"--max-regression {text!r}: expected a percentage such as 5% (a bare number could mean 5 % or 500 %)"
        )
    try:
        value = float(t[:-1]) / 100
    except ValueError:
        raise UserError(f"--max-regression {text!r}: expected a percentage such as 5%") from None
    if not 0 <= value < 10:  # also refuses nan
        raise UserError(f"--max-regression {text!r}: must be between 0% and 1000%")
    return value


def _gpu(r) -> str:
    return r.environment.gpu.name if r.environment and r.environment.gpu else "CPU"


def _rows(c: Collection) -> dict[tuple, Row]:
    out = {}
    for g in c.groups:
        for row in g.rows:
            out[(g.workload_hash, g.model, _gpu(row.first), row.first.stack, row.first.scenario)] = row
    return out


def _serving_loads(c: Collection) -> dict[tuple, tuple[dict, dict]]:
    """Each load of each serving result: (its figures by SERVING_METRICS name, with its duration; why a
    figure was not measured)."""
    out = {}
    for data in c.serving:
        gpu = data.environment.gpu.name if data.environment and data.environment.gpu else "CPU"
        for load in data.loads:
            figures = {
                "completed_share": load.completed / load.requests if load.requests else None,
                "achieved_rps": load.achieved_rps,
                "output_tokens_per_s": load.output_tokens_per_s,
                "goodput_rps": load.goodput_rps,
                "ttft_p99_ms": load.ttft_ms.p99 if load.ttft_ms else None,
                "tpot_p99_ms": load.tpot_ms.p99 if load.tpot_ms else None,
            }
            source = {"ttft_p99_ms": "ttft_ms", "tpot_p99_ms": "tpot_ms"}
            unmeasured = {m: load.unmeasured[source.get(m, m)] for m in figures if source.get(m, m) in load.unmeasured}
            key = ("serving", data.model, gpu, data.stack, f"{data.scenario} @ {load.load}")
            out[key] = (figures | {"duration_s": load.duration_s}, unmeasured)
    return out


@dataclass
class Unchecked:
    """A baseline scenario (or serving load, or figure) the gate could not compare, and why."""

    what: str
    reason: str
    scenario: tuple[str, str] | None = None  # (stack, scenario) of the baseline it stands for


@dataclass
class Comparison:
    deltas: list[Delta]
    unchecked: list[Unchecked]  # baseline scenarios the candidate does not let the gate check
    new: list[str]  # in the candidate only: not gated
    ungated: list[Unchecked] = field(default_factory=list)  # the baseline's own failed or unreadable files


def _holds(file: str, stack: str, scenario: str) -> bool:
    """Whether a file's name is one the tool gives a result of this scenario (offline or serving)."""
    pattern = rf"(serving-)?{re.escape(stack)}-{re.escape(scenario)}(-r\d+)?\.json"
    return re.fullmatch(pattern, Path(file).name) is not None


def _file_problems(c: Collection, stack: str, scenario: str) -> list[str]:
    """The candidate's problems with the files that would hold this scenario's results."""
    return [f"{f}: {why}" for f, why in c.problems if _holds(f, stack, scenario)]


def _why_missing(cand: Collection, key: tuple, cand_rows: dict[tuple, Row]) -> str:
    _, model, gpu, stack, scenario = key
    failed = [r for g in cand.groups for r in g.failed if (r.stack, r.scenario) == (stack, scenario)]
    if failed:
        return f"{failed[0].status} in the candidate: {failed[0].error}"
    broken = _file_problems(cand, stack, scenario)
    if broken:
        return "unreadable in the candidate: " + "; ".join(broken[:3])
    other = [k for k in cand_rows if (k[3], k[4]) == (stack, scenario)]
    if other:
        o = other[0]
        parts = [f"{what} {a!r} vs {b!r}" for what, a, b in
                 (("workload", key[0], o[0]), ("model", model, o[1]), ("GPU", gpu, o[2])) if a != b]  # fmt: skip
        return "a different " + ", ".join(parts) + ": results of different workloads or GPUs are never compared"
    return "missing from the candidate"


def _serving_deltas(baseline: Collection, candidate: Collection) -> tuple[list[Delta], list[Unchecked], list]:
    base, cand = _serving_loads(baseline), _serving_loads(candidate)
    deltas, unchecked = [], []
    for k in sorted(base):
        what = f"{k[3]} {k[4]}"
        if k not in cand:
            scenario = k[4].split(" @ ")[0]
            broken = _file_problems(candidate, k[3], scenario)
            ended = [d for d in candidate.serving if (d.stack, d.scenario) == (k[3], scenario) and d.status != "ok"]
            reason = (
                "unreadable in the candidate: " + "; ".join(broken[:3]) if broken
                else f"the candidate's sweep ended before this load ({ended[0].status}: {ended[0].error})" if ended
                else "missing from the candidate"
            )  # fmt: skip
            unchecked.append(Unchecked(what, reason, (k[3], scenario)))
            continue
        (b, b_unmeasured), (c, c_unmeasured) = base[k], cand[k]
        shortest = min(b["duration_s"], c["duration_s"])
        for m in SERVING_METRICS:
            why = b_unmeasured.get(m) or c_unmeasured.get(m)
            if why:
                side = "baseline" if m in b_unmeasured else "candidate"
                unchecked.append(Unchecked(f"{what} {m}", f"not measured in the {side}: {why}"))
                continue
            if b[m] is None and c[m] is not None or b[m] is not None and c[m] is None:
                unchecked.append(Unchecked(f"{what} {m}", "given on one side only"))
                continue
            if b[m] is not None and (b[m] or c[m]):
                deltas.append(Delta(k, m, Stat.of([b[m]]), Stat.of([c[m]]), shortest))
    new = [f"{k[3]} {k[4]}" for k in sorted(set(cand) - set(base))]
    return deltas, unchecked, new


def compare(baseline: Path, candidate: Path) -> Comparison:
    """Every baseline scenario (and serving load) compared with the candidate's, or listed with the reason
    it could not be: missing, failed, unreadable, a different workload, a figure not measured."""
    collected = collect(baseline), collect(candidate)  # each directory read once
    base_c, cand_c = collected
    base, cand = _rows(base_c), _rows(cand_c)
    common = sorted(set(base) & set(cand))
    served, unchecked, new = _serving_deltas(*collected)
    unrelated = all(_why_missing(cand_c, k, cand).startswith("a different") for k in base)
    if not common and not served and base and unrelated:
        raise UserError(
            "no scenario of the candidate matches the baseline on workload hash, model and GPU: "
            "results of different workloads or GPUs are never compared"
        )
    deltas = []
    for k in sorted(base):
        if k not in cand:
            unchecked.append(Unchecked(f"{k[3]} {k[4]}", _why_missing(cand_c, k, cand), (k[3], k[4])))
            continue
        shortest = min(r.metrics.elapsed_s for r in base[k].results + cand[k].results)
        for m in METRICS:
            b, c = base[k].stat(m), cand[k].stat(m)
            if b.mean or c.mean:
                deltas.append(Delta(k, m, b, c, shortest))
    new += [f"{k[3]} {k[4]}" for k in sorted(set(cand) - set(base))]
    # What the candidate could not read and no baseline scenario's file accounts for (a directory that
    # cannot be listed, a file of another name): it may hold what the baseline asks for.
    accounted = {u.scenario for u in unchecked if u.scenario}
    baseline_own = {Path(f).name for f, _ in base_c.problems}  # failed or unreadable there too: not gated
    for f, why in cand_c.problems:
        if Path(f).name not in baseline_own and not any(_holds(f, *sc) for sc in accounted):
            unchecked.append(Unchecked(f"candidate {f}", why))
    # The baseline says what is gated: what it could not measure or read is named, and gates nothing.
    ungated = [Unchecked(f"baseline {f}", why) for f, why in base_c.problems]
    return Comparison(deltas + served, unchecked, new, ungated)


FLAGS = {"ok": "", "regression": "  REGRESSION", "inconclusive": "  within noise", "too short": "  too short"}


def gate(c: Comparison, threshold: float, min_run_s: float, allow_missing: bool = False) -> tuple[list[str], bool]:
    """The table of every comparison, what could not be compared and why, and a last line whose PASS/FAIL
    is the gate's verdict."""
    verdicts = [d.verdict(threshold, min_run_s) for d in c.deltas]

    def value(stat: Stat) -> str:
        return f"{stat.mean:,.2f}" + (f" (n={stat.n})" if stat.n > 1 else "")

    lines = [f"{'scenario':28} {'metric':22} {'baseline':>16} {'candidate':>16} {'change':>16}"]
    for d, v in zip(c.deltas, verdicts):
        change = f"{d.change:+.1%}" + (f" ±{d.ci95:.1%}" if d.ci95 is not None else "")
        lines.append(
            f"{d.key[3] + ' ' + d.key[4]:28} {d.metric:22} {value(d.base):>16} {value(d.cand):>16} {change:>16}"
            f"{FLAGS[v]}"
        )
    short = [
        Unchecked(f"{d.key[3]} {d.key[4]} {d.metric}", f"{d.change:+.1%}, worse beyond {threshold:.1%}, on a run "
                  f"of {d.shortest_s:.1f} s, under {min_run_s:g} s: too short to judge")
        for d, v in zip(c.deltas, verdicts) if v == "too short"
    ]  # fmt: skip
    unchecked = c.unchecked + short
    for u in unchecked:
        lines.append(f"NOT COMPARED: {u.what}: {u.reason}")
    for n in c.new:
        lines.append(f"new in the candidate (not gated): {n}")
    for u in c.ungated:
        lines.append(f"not in the baseline's figures (not gated): {u.what}: {u.reason}")
    regressions, noisy = verdicts.count("regression"), verdicts.count("inconclusive")
    notes = []
    if noisy:
        notes.append(f"{noisy} worse beyond {threshold:.1%} but within the repeats' noise")
    if unchecked:
        verdict = " (allowed by --allow-missing)" if allow_missing else " (fails the gate)"
        notes.append(f"{len(unchecked)} not compared{verdict}")
    failed = regressions > 0 or (bool(unchecked) and not allow_missing)
    lines.append(
        f"{'FAIL' if failed else 'PASS'}: {regressions} regression(s) beyond {threshold:.1%} in "
        f"{len(c.deltas)} comparisons" + (f"; {'; '.join(notes)}" if notes else "")
    )
    return lines, failed
