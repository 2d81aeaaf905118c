"""A background sampler: device memory (NVML), host memory and CPU (psutil), and stack gauges, with phases.

It runs in a thread that sleeps on an Event between samples, so stopping is immediate. Each sample
costs a few NVML/psutil calls (well under a millisecond); the run records the interval and the number
of samples so the overhead can be judged.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import psutil

from bench.results.schema import Memory, Phase, Sample
from bench.telemetry.gpu import Gpu

MIB = 1024 * 1024
MAX_TIMELINE = 2000  # samples kept in the result; peaks are taken over all samples


class Sampler:
    def __init__(self, interval_ms: float = 50.0, gpu: Gpu | None = None, background: bool = True) -> None:
        if interval_ms <= 0:
            raise ValueError("interval_ms must be > 0")
        self.interval_s = interval_ms / 1000.0
        # Without the background thread, samples are taken at phase boundaries only (to measure the
        # sampler's own overhead against a run that has it).
        self.background = background
        self.gpu = gpu if gpu is not None else Gpu()
        self.process = psutil.Process(os.getpid())
        self.samples: list[Sample] = []
        self.phases: list[Phase] = []
        self.engine_probe: Callable[[], dict[str, float]] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self.used_before_mib: float | None = None

    # --- control ---------------------------------------------------------------------------------------

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._t0 = time.perf_counter()
        if self.gpu.available:
            self.used_before_mib = self.gpu.read().used_mib
        self.process.cpu_percent(None)
        self._thread = threading.Thread(target=self._loop, name="pagedbench-sampler", daemon=True)
        if self.background:
            self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._thread = None
        self._take()  # one last sample after the work
        if self.phases and self.phases[-1].end_s is None:
            self.phases[-1].end_s = self.now()

    def now(self) -> float:
        return time.perf_counter() - self._t0

    def mark(self, phase: str) -> None:
        """Start a new phase (ending the previous one) and take a sample at its boundary."""
        with self._lock:
            t = self.now()
            if self.phases and self.phases[-1].end_s is None:
                self.phases[-1].end_s = t
            self.phases.append(Phase(name=phase, start_s=t))
        self._take()

    @property
    def phase(self) -> str:
        return self.phases[-1].name if self.phases and self.phases[-1].end_s is None else "idle"

    # --- sampling --------------------------------------------------------------------------------------

    def _pids(self) -> set[int]:
        try:
            return {self.process.pid} | {c.pid for c in self.process.children(recursive=True)}
        except psutil.Error:
            return {self.process.pid}

    def _host(self) -> tuple[float | None, float | None]:
        """RSS of this process and its children (vLLM's engine core is a child process)."""
        try:
            procs = [self.process] + self.process.children(recursive=True)
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            return rss / MIB, self.process.cpu_percent(None)
        except psutil.Error:
            return None, None

    def _take(self) -> None:
        s = Sample(t_s=self.now(), phase=self.phase)
        if self.gpu.available:
            try:
                r = self.gpu.read(self._pids())
                s.device_used_mib, s.process_used_mib = r.used_mib, r.process_used_mib
                s.gpu_util_pct, s.power_w = r.util_pct, r.power_w
            except Exception:
                pass
        s.host_rss_mib, s.host_cpu_pct = self._host()
        probe = self.engine_probe
        if probe is not None:
            try:
                s.engine = probe()
            except Exception:
                s.engine = None
        with self._lock:
            self.samples.append(s)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._take()

    # --- summary ---------------------------------------------------------------------------------------

    def peak(self, field: str, phases: set[str] | None = None) -> float | None:
        values = [
            getattr(s, field)
            for s in self.samples
            if getattr(s, field) is not None and (phases is None or s.phase in phases)
        ]
        return max(values) if values else None

    def engine_peak(self, key: str, phases: set[str] | None = None) -> float | None:
        values = [
            s.engine[key]
            for s in self.samples
            if s.engine and key in s.engine and (phases is None or s.phase in phases)
        ]
        return max(values) if values else None

    def memory(self, device: str) -> Memory:
        if self.gpu.available:
            source = "NVML: device-wide used memory"
            if any(s.process_used_mib is not None for s in self.samples):
                source += " + per-process (this process and its children)"
            else:
                source += " (per-process not visible: another PID namespace or no permission)"
        else:
            source = "no NVIDIA device: host RSS of this process and its children only"
        stride = max(1, -(-len(self.samples) // MAX_TIMELINE))
        info = self.gpu.info() if self.gpu.available else {}
        if not self.background:
            source += "; sampled at phase boundaries only (background sampler off)"
        return Memory(
            device=device,
            source=source,
            sample_interval_ms=self.interval_s * 1000.0,
            device_total_mib=info.get("memory_total_mib"),
            device_used_before_mib=self.used_before_mib,
            peak_device_used_mib=self.peak("device_used_mib"),
            peak_process_used_mib=self.peak("process_used_mib"),
            peak_host_rss_mib=self.peak("host_rss_mib"),
            timeline=self.samples[::stride],
            phases=self.phases,
        )
