"""The sampler: device memory (NVML), host memory and CPU (psutil), and stack gauges, with phases.

Device and host readings are taken by a separate process (`bench.telemetry.monitor`) every interval, so
sampling never competes with the measured run for its interpreter lock; its readings are merged in when
the sampler stops. Stack gauges (vLLM's KV usage, say) can only be read in this process: a thread reads
them, and only while a runner has set `engine_probe`. Phase boundaries take a reading in this process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from bench.results.schema import GpuPeak, Memory, Phase, Sample
from bench.telemetry.gpu import Gpu, other_gpus
from bench.telemetry.monitor import measure

MAX_TIMELINE = 2000  # samples kept in the result; peaks are taken over all samples


MONITOR_PREFIX = "pagedbench-monitor-"


def _remove_stale_monitor_files() -> None:
    """Readings left in the temporary directory by runs that were killed (their process is gone)."""
    for path in Path(tempfile.gettempdir()).glob(f"{MONITOR_PREFIX}*-*.jsonl"):
        owner = path.name.removeprefix(MONITOR_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not psutil.pid_exists(int(owner)):
            with contextlib.suppress(OSError):
                path.unlink()


class Sampler:
    def __init__(
        self, interval_ms: float = 50.0, gpu: Gpu | None = None, background: bool = True, pid: int | None = None
    ) -> None:
        if interval_ms <= 0:
            raise ValueError("interval_ms must be > 0")
        self.interval_s = interval_ms / 1000.0
        # Without background sampling, readings are taken at phase boundaries only (to measure the
        # sampler's own overhead against a run that has it).
        self.background = background
        self.gpu = gpu if gpu is not None else Gpu()
        self.others = other_gpus(self.gpu)  # a run's other devices, where CUDA sees several
        self.process = psutil.Process(pid or os.getpid())  # the process sampled, with its children
        self.samples: list[Sample] = []
        self.phases: list[Phase] = []
        self.engine_probe: Callable[[], dict[str, float]] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._monitor: subprocess.Popen | None = None
        self._monitor_file: Path | None = None
        self._t0 = 0.0
        self._t0_unix: float | None = None
        self._started = False
        self.used_before_mib: float | None = None

    # --- control ---------------------------------------------------------------------------------------

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._t0_unix = time.time()
        self._started = True
        if self.gpu.available:
            self.used_before_mib = self.gpu.read().used_mib
        self.process.cpu_percent(None)
        if self.background:
            self._start_monitor()
            self._thread = threading.Thread(target=self._probe_loop, name="pagedbench-probe", daemon=True)
            self._thread.start()

    def _start_monitor(self) -> None:
        _remove_stale_monitor_files()
        fd, name = tempfile.mkstemp(prefix=f"{MONITOR_PREFIX}{os.getpid()}-", suffix=".jsonl")
        os.close(fd)
        self._monitor_file = Path(name)
        args = [str(self.process.pid), repr(self.interval_s), name] + ([] if self.gpu.available else ["--no-gpu"])
        self._monitor = subprocess.Popen(
            [sys.executable, "-m", "bench.telemetry.monitor", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C is for the run, which stops the monitor itself
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [_package_root(), os.environ.get("PYTHONPATH")])),
            },
        )

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()
        self._thread = None
        self._stop_monitor()
        self._take()  # one last sample after the work
        if self.phases and self.phases[-1].end_s is None:
            self.phases[-1].end_s = self.now()
        self.samples.sort(key=lambda x: x.t_s)

    def _stop_monitor(self) -> None:
        if self._monitor is None:
            return
        with contextlib.suppress(OSError):
            self._monitor.stdin.close()  # the monitor exits at once
        try:
            self._monitor.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._monitor.kill()
            self._monitor.wait()
        self._monitor = None
        path, self._monitor_file = self._monitor_file, None
        try:
            lines = path.read_text().splitlines()
        finally:
            path.unlink(missing_ok=True)
        for line in lines:
            try:
                reading = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            t = reading.pop("t") - self._t0
            self.samples.append(Sample(t_s=t, phase=self._phase_at(t), **reading))

    def now(self) -> float:
        return time.monotonic() - self._t0

    def mark(self, phase: str) -> None:
        """Start a new phase (ending the previous one) and take a sample at its boundary, with the GPUs'
        energy counters."""
        energy = [g.energy_j() for g in (self.gpu, *self.others)] if self.gpu.available else None
        with self._lock:
            t = self.now()
            if self.phases and self.phases[-1].end_s is None:
                self.phases[-1].end_s = t
            self.phases.append(Phase(name=phase, start_s=t, energy_j=energy))
        self._take()

    @property
    def phase(self) -> str:
        return self.phases[-1].name if self.phases and self.phases[-1].end_s is None else "idle"

    def _phase_at(self, t: float) -> str:
        for p in reversed(self.phases):
            if p.start_s <= t and (p.end_s is None or t < p.end_s):
                return p.name
        return "idle"

    # --- sampling --------------------------------------------------------------------------------------

    def _take(self) -> None:
        s = Sample(t_s=self.now(), phase=self.phase, **measure(self.gpu, self.process, self.others))
        s.engine = self._engine()
        with self._lock:
            self.samples.append(s)

    def _engine(self) -> dict[str, float] | None:
        probe = self.engine_probe
        if probe is None:
            return None
        try:
            return probe()
        except Exception:
            return None

    def _probe_loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self.engine_probe is not None:
                engine = self._engine()
                with self._lock:
                    self.samples.append(Sample(t_s=self.now(), phase=self.phase, engine=engine))

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

    def per_gpu(self) -> list[GpuPeak]:
        """Each device's peaks, where the run's CUDA sees several: used memory, and this run's share."""
        peaks: dict[str, dict] = {}
        for s in self.samples:
            for g in s.gpus or []:
                p = peaks.setdefault(str(g.index), {"index": g.index, "used": [], "process": []})
                p["used"] += [g.used_mib] if g.used_mib is not None else []
                p["process"] += [g.process_used_mib] if g.process_used_mib is not None else []
        return [
            GpuPeak(
                index=p["index"],
                peak_used_mib=max(p["used"], default=None),
                peak_process_used_mib=max(p["process"], default=None),
            )
            for p in peaks.values()
        ]

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
        if self.background:
            source += f"; sampled every {self.interval_s * 1000:g} ms by a separate process"
        else:
            source += "; sampled at phase boundaries only (background sampler off)"
        return Memory(
            device=device,
            source=source,
            sample_interval_ms=self.interval_s * 1000.0,
            t0_unix=self._t0_unix,
            device_total_mib=info.get("memory_total_mib"),
            device_used_before_mib=self.used_before_mib,
            peak_device_used_mib=self.peak("device_used_mib"),
            peak_process_used_mib=self.peak("process_used_mib"),
            peak_host_rss_mib=self.peak("host_rss_mib"),
            per_gpu=self.per_gpu(),
            timeline=self.samples[::stride],
            phases=self.phases,
        )


def _package_root() -> str:
    """The directory holding the `bench` package, so the monitor imports this same copy of it."""
    return str(Path(__file__).resolve().parents[2])
