"""When each request is sent: a replayable schedule from a seed. Open-loop profiles (constant rate,
Poisson, gamma) give send times; a fixed concurrency is closed-loop (a request is sent when one returns)
and has no times."""

from __future__ import annotations

import random
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
    """Seconds from the start at which each of `n` requests is sent; None for a closed loop. The first
    request goes at 0; the same load and n give the same times."""
    if load.profile == "concurrency":
        return None
    rng = random.Random(load.seed)
    mean = 1.0 / load.rate
    times, t = [], 0.0
    for i in range(n):
        times.append(t)
        if load.profile == "constant":
            t = (i + 1) * mean
        elif load.profile == "poisson":
            t += rng.expovariate(load.rate)
        else:  # gamma with mean 1/rate: shape k, scale 1/(k·rate)
            t += rng.gammavariate(load.burstiness, mean / load.burstiness)
    return times


def sweep(rates: list[float], profile: Profile = "poisson", seed: int = 0, burstiness: float = 1.0) -> list[Load]:
    """Open-loop loads at the given rates, lowest first."""
    return [Load(profile, rate=r, seed=seed, burstiness=burstiness) for r in sorted(rates)]
