"""What a phase of a run (the timed run; a serving load) took from the GPUs it used, in joules: the
difference of each GPU's NVML energy counter at the phase's start and at the next phase's, summed; where a
device has no counter, the power its samples read, integrated over the phase. Per output token and per
token, beside the same GPUs' power before the engine loaded."""

from __future__ import annotations

from bench.results.schema import Memory, Phase, Sample
from bench.results.sections import Energy

COUNTERS = "NVML energy counters"


def _counted(phases: list[Phase], name: str, gpus: int) -> tuple[float, float] | None:
    """(joules, seconds) of the phase from the counters at its start and the next phase's start."""
    for i, p in enumerate(phases[:-1]):
        if p.name != name:
            continue
        start, end = p.energy_j, phases[i + 1].energy_j
        if not start or not end or len(start) < gpus or len(end) < gpus:
            return None
        pairs = list(zip(start[:gpus], end[:gpus]))
        if any(a is None or b is None or b < a for a, b in pairs):
            return None
        return sum(b - a for a, b in pairs), phases[i + 1].start_s - p.start_s
    return None


def _integrated(samples: list[Sample], name: str, gpus: int) -> tuple[float, float, int] | None:
    """(joules, seconds, samples) from the power readings taken during the phase, trapezoid by trapezoid."""
    points = []
    for s in samples:
        if s.phase != name:
            continue
        if gpus > 1:
            each = [g.power_w for g in (s.gpus or [])[:gpus]]
            power = sum(each) if len(each) == gpus and None not in each else None
        else:
            power = s.power_w
        if power is not None:
            points.append((s.t_s, power))
    if len(points) < 2:
        return None
    joules = sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(points, points[1:]))
    return joules, points[-1][0] - points[0][0], len(points)


def phase_energy(
    memory: Memory | None,
    name: str,
    gpus: int,
    output_tokens: int,
    prompt_tokens: int,
    idle_power: list[float] | None = None,
) -> Energy:
    """The energy of the phase `name` on the first `gpus` devices of the run (none: a CPU run), per token,
    beside those devices' idle power (`idle_power`: each visible device's, the run's first)."""
    if memory is None or gpus == 0:
        return Energy(source="none", error="no NVIDIA GPU: a CPU run's energy is not measured")
    idle_power_w = sum(idle_power[:gpus]) if idle_power and len(idle_power) >= gpus else None
    counted = _counted(memory.phases, name, gpus)
    if counted is not None:
        (joules, seconds), source = counted, COUNTERS
    else:
        integrated = _integrated(memory.timeline, name, gpus)
        if integrated is None:
            return Energy(
                source="none",
                gpus=gpus,
                idle_power_w=idle_power_w,
                error="no energy counter on these GPUs, and too few power readings in the phase to integrate",
            )
        joules, seconds, n = integrated
        source = f"power integrated over {n} samples"
    tokens = output_tokens + prompt_tokens
    return Energy(
        source=source,
        gpus=gpus,
        seconds=seconds,
        joules=joules,
        per_output_token_j=joules / output_tokens if output_tokens else None,
        per_token_j=joules / tokens if tokens else None,
        mean_power_w=joules / seconds if seconds > 0 else None,
        idle_power_w=idle_power_w,
    )
