"""The energy PagedBench reported for each timed run and serving load, beside the same window's energy from
`nvidia-smi`'s own power readings, taken by another process during the same runs:

    TZ=UTC nvidia-smi --query-gpu=timestamp,index,power.draw.instant --format=csv,nounits -lms 100 >smi.csv &
    pagedbench run ...          # or serve
    kill %1
    python scripts/energy_crosscheck.py smi.csv RESULTS_DIR [RESULTS_DIR ...] [--tolerance 5]

Each result's window is its phase on the wall clock (`memory.t0_unix` + the phase's start, to the next
phase's start); nvidia-smi's readings (its timestamps read as UTC: run it with TZ=UTC) are summed over
GPUs per timestamp and integrated over the window, trapezoid by trapezoid, with the power at the window's
edges interpolated. `power.draw.instant` is used where the file has it; `power.draw` is, on recent GPUs, an
average over the last second, and lags. One line per window with both figures and their difference; exit 1
where one differs by more than `--tolerance` per cent, 2 on bad input or where no window could be compared.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from pathlib import Path

EDGE_S = 0.5  # readings must reach this close to a window's ends


def read_smi(path: Path) -> list[tuple[float, float]]:
    """(Unix seconds, watts summed over the GPUs read at that timestamp), in time order."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty")
    header = [h.strip().split(" [")[0] for h in rows[0]]
    if "timestamp" not in header:
        raise ValueError(f"{path}: no timestamp column (header {rows[0]})")
    column = next((c for c in ("power.draw.instant", "power.draw") if c in header), None)
    if column is None:
        raise ValueError(f"{path}: no power.draw column (header {rows[0]})")
    t_at, p_at = header.index("timestamp"), header.index(column)
    summed: dict[float, float] = {}
    for row in rows[1:]:
        if len(row) != len(header) or row[0].strip() == "timestamp":
            continue
        try:
            t = dt.datetime.strptime(row[t_at].strip(), "%Y/%m/%d %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
            watts = float(row[p_at])
        except ValueError:
            continue  # "[N/A]", a line cut short
        summed[t.timestamp()] = summed.get(t.timestamp(), 0.0) + watts
    return sorted(summed.items())


def _power_at(points: list[tuple[float, float]], t: float) -> float:
    for (t0, p0), (t1, p1) in zip(points, points[1:]):
        if t0 <= t <= t1:
            return p0 if t1 == t0 else p0 + (p1 - p0) * (t - t0) / (t1 - t0)
    raise ValueError("outside the readings")


def integrate(points: list[tuple[float, float]], start: float, end: float) -> float | None:
    """Joules over [start, end] from the readings, or None where they do not cover the window."""
    if not points or points[0][0] > start + EDGE_S or points[-1][0] < end - EDGE_S:
        return None
    start, end = max(start, points[0][0]), min(end, points[-1][0])
    inside = [(t, p) for t, p in points if start < t < end]
    edge = [(start, _power_at(points, start)), *inside, (end, _power_at(points, end))]
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(edge, edge[1:]))


def windows(result: dict) -> list[tuple[str, float, float, float]]:
    """(label, start, end in Unix seconds, the joules PagedBench reported) for each measured phase."""
    memory = result.get("memory") or {}
    t0, phases = memory.get("t0_unix"), memory.get("phases") or []
    if t0 is None:
        return []
    if result.get("kind") == "serving":
        named = [(load["load"], load.get("energy")) for load in result.get("loads", [])]
    else:
        named = [("run", result.get("energy"))]
    out = []
    for name, energy in named:
        if not energy or energy.get("joules") is None:
            continue
        for here, after in zip(phases, phases[1:]):
            if here["name"] == name:
                label = f"{result.get('scenario')} #{result.get('repeat', 0)} {name}"
                out.append((label, t0 + here["start_s"], t0 + after["start_s"], energy["joules"]))
                break
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("smi_csv", type=Path)
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--tolerance", type=float, default=5.0, help="per cent (default 5)")
    args = parser.parse_args(argv)
    bad = [str(d) for d in args.results if not d.is_dir()]
    if bad or not args.smi_csv.is_file() or not 0 < args.tolerance < 100:
        what = bad or ([str(args.smi_csv)] if not args.smi_csv.is_file() else [f"--tolerance {args.tolerance}"])
        print(f"energy_crosscheck.py: {', '.join(what)}: not usable", file=sys.stderr)
        return 2
    try:
        points = read_smi(args.smi_csv)
    except (OSError, ValueError) as e:
        print(f"energy_crosscheck.py: {e}", file=sys.stderr)
        return 2
    compared = off = 0
    for path in sorted(p for d in args.results for p in d.rglob("*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(result, dict):
            continue
        for label, start, end, ours in windows(result):
            theirs = integrate(points, start, end)
            if theirs is None or theirs <= 0:
                print(f"{'—':9} {label}: {ours:,.0f} J; nvidia-smi's readings do not cover its {end - start:.1f} s")
                continue
            diff = 100 * (ours / theirs - 1)
            compared += 1
            off += abs(diff) > args.tolerance
            verdict = "ok" if abs(diff) <= args.tolerance else "DIFFERS"
            print(
                f"{verdict:9} {label}: PagedBench {ours:,.0f} J, nvidia-smi {theirs:,.0f} J ({diff:+.1f} %) "
                f"over {end - start:.1f} s, mean {theirs / (end - start):,.0f} W  [{path}]"
            )
    if not compared:
        print("no window could be compared (results need memory.t0_unix and an energy figure)", file=sys.stderr)
        return 2
    print(f"{compared} window(s) compared, {off} differ by more than {args.tolerance:g} %")
    return 1 if off else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
