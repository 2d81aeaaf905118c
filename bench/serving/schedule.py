"""When each request is sent: a replayable schedule from a seed. Open-loop profiles (constant rate,
Poisson, gamma) give send times; a fixed concurrency is closed-loop (a request is sent when one returns)
and has no times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Profile = Literal["constant", "poisson", "gamma", "concurrency"]


@dataclass(frozen=True)
class Load:
    """One load level. `rate`: requests per second offered (open-loop profiles); `burstiness`: the gamma
    distribution's shape (1 is Poisson, below 1 burstier, above 1 smoother); `concurrency`: requests in
    flight at once (closed loop)."""

    profile: Profile
    rate: float | None = None
    concurrency: int | None = None
    burstiness: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.profile == "concurrency":
            if not self.concurrency or self.concurrency < 1:
                raise ValueError("a concurrency load needs concurrency >= 1")
        elif not self.rate or self.rate <= 0:
            raise ValueError(f"a {self.profile} load needs a rate > 0 (requests per second)")
        if self.burstiness <= 0:
            raise ValueError("burstiness must be > 0")

    @property
    def label(self) -> str:
        if self.profile == "concurrency":
            return f"concurrency {self.concurrency}"
        shape = f", burstiness {self.burstiness:g}" if self.profile == "gamma" else ""
        return f"{self.profile} {self.rate:g} req/s{shape}"


def send_times(load: Load, n: int) -> list[float] | None:
    """Seconds from the start at which each of `n` requests is sent; None for a closed loop. The same load
    and n give the same times.

    Constant: every 1/rate from 0. Poisson and gamma: the schedule `vllm bench serve` sends for the same
    seed, rate and burstiness — each gap drawn from numpy's seeded legacy generator (gamma of shape k and
    scale 1/(k·rate); k = 1 is Poisson), summed, and scaled so that the last request leaves at n/rate —
    so that the two clients can be compared on the very same arrivals."""
    if load.profile == "concurrency":
        return None
    if load.profile == "constant":
        return [i / load.rate for i in range(n)]
    import numpy as np

    rng = np.random.RandomState(load.seed)
    shape = 1.0 if load.profile == "poisson" else load.burstiness
    scale = 1.0 / (load.rate * shape)
    times, t = [], 0.0
    for _ in range(n):
        t += float(rng.gamma(shape=shape, scale=scale))
        times.append(t)
    if times and times[-1] > 0:
        factor = (n / load.rate) / times[-1]
        times = [x * factor for x in times]
    return times


def sweep(rates: list[float], profile: Profile = "poisson", seed: int = 0, burstiness: float = 1.0) -> list[Load]:
    """Open-loop loads at the given rates, lowest first."""
    return [Load(profile, rate=r, seed=seed, burstiness=burstiness) for r in sorted(rates)]
