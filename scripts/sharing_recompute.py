"""Memory saved by sharing, recomputed from the raw readings a result keeps, apart from the engine's own sums.

    python scripts/sharing_recompute.py RESULTS_DIR [RESULTS_DIR ...]

Every result file with a sharing trace (`kv.sharing.trace`: seconds, logical blocks, physical blocks after
every engine step) is read as plain JSON, not through PagedBench's models, and the vLLM paper's measure is
worked out again: each reading's state holds until the next one, time where no block was held is left
out, saved = 1 - (time integral of physical blocks) / (time integral of logical blocks), and at the busiest
moment (most physical blocks; the most logical among equals) 1 - physical / logical. One line per run
with the result's figures beside the recomputed ones; exit 1 where they differ by more than 0.05
percentage points (the trace keeps times to the nanosecond), 2 where no result had a trace.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TOLERANCE = 5e-4  # a fraction: 0.05 percentage points


def recompute(trace: dict) -> tuple[float | None, float | None]:
    """(saved over the run, saved at the busiest moment) from the columns alone."""
    t, logical, physical = trace["t_s"], trace["logical"], trace["physical"]
    held_l = held_p = 0.0
    for i in range(1, len(t)):
        if logical[i - 1] > 0:
            dt = t[i] - t[i - 1]
            held_l += logical[i - 1] * dt
            held_p += physical[i - 1] * dt
    saved = 1 - held_p / held_l if held_l > 0 else None
    peak_physical, peak_logical = max(zip(physical, logical))
    at_peak = 1 - peak_physical / peak_logical if peak_logical else None
    return saved, at_peak


def reported(sharing: dict) -> tuple[float | None, float | None]:
    def saved(physical, logical):
        return 1 - physical / logical if physical is not None and logical else None

    return (
        saved(sharing.get("physical_blocks_mean"), sharing.get("logical_blocks_mean")),
        saved(sharing.get("peak_physical_blocks"), sharing.get("logical_blocks_at_peak")),
    )


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def _differ(a: float | None, b: float | None) -> bool:
    return (a is None) != (b is None) or (a is not None and abs(a - b) > TOLERANCE)


def main(argv: list[str]) -> int:
    if not argv or any(not Path(d).is_dir() for d in argv):
        missing = [d for d in argv if not Path(d).is_dir()]
        print(f"usage: sharing_recompute.py RESULTS_DIR ... ({', '.join(missing) or 'no directory'}: not a directory)")
        return 2
    checked = differ = 0
    for path in sorted(p for d in argv for p in Path(d).rglob("*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        sharing = ((result.get("kv") or {}) if isinstance(result, dict) else {}).get("sharing") or {}
        trace = sharing.get("trace")
        if not trace or not trace.get("t_s"):
            continue
        ours, theirs = recompute(trace), reported(sharing)
        bad = any(_differ(a, b) for a, b in zip(ours, theirs))
        checked += 1
        differ += bad
        print(
            f"{'DIFFERS' if bad else 'ok':7}  {result.get('scenario')} #{result.get('repeat')}: saved "
            f"{_pct(theirs[0])} (recomputed {_pct(ours[0])}), at the busiest moment {_pct(theirs[1])} "
            f"(recomputed {_pct(ours[1])}), {len(trace['t_s'])} readings  [{path}]"
        )
    if not checked:
        print("no result with a sharing trace (kv_sharing_probe) under " + ", ".join(argv))
        return 2
    print(f"{checked} run(s) recomputed, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
