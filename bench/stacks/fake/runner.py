"""The fake runner: no engine, for exercising the harness (CLI, result files, report) without hardware.

It generates nothing: it returns the requested token counts after a token-proportional pause. Its
results carry `is_measurement: false` and the report never presents them as numbers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from bench.config import Workload
from bench.stacks.base import RequestTiming, Runner, RunOutput
from bench.workload import Request, per_sample


class FakeRunner(Runner):
    is_measurement = False

    def load(self) -> dict[str, float]:
        return {"load_s": 0.0}

    def run(self, requests: Sequence[Request], sampling: Workload, *, warmup: bool = False) -> RunOutput:
        if self.scenario.fail and not warmup:
            raise RuntimeError(self.scenario.fail)
        t0 = time.perf_counter()
        timings = []
        requests = per_sample(requests, sampling.outputs_per_prompt)  # one per output
        for r in requests:
            time.sleep(1e-5 * r.output_len)
            now = time.perf_counter() - t0
            timings.append(RequestTiming(finish_s=now, first_token_s=now, last_token_s=now))
        return RunOutput(
            elapsed_s=time.perf_counter() - t0,
            returned_tokens=[r.output_len for r in requests],
            timings=timings,
            latency_source="fake runner: no engine, not a measurement",
        )
