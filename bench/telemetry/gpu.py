"""NVML reads for one device. Without an NVIDIA device (or driver) every reader says so instead of failing."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

MIB = 1024 * 1024


def _nvml():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no library, no driver, no device: a CPU host
        return None


@dataclass
class GpuReading:
    used_mib: float
    total_mib: float
    process_used_mib: float | None
    util_pct: float | None
    power_w: float | None


def visible_indices(nvml=None) -> list[int | str]:
    """Every device CUDA will see, by NVML index or UUID: CUDA_VISIBLE_DEVICES's entries, or when it is
    unset every NVML device (device 0 without NVML to count them). Set but empty: none."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [int(x) if x.strip().isdigit() else x.strip() for x in env.split(",") if x.strip()]
    try:
        return list(range(nvml.nvmlDeviceGetCount())) or [0]
    except Exception:
        return [0]


def visible_index() -> int | str | None:
    """The NVML index (or UUID) of the first device CUDA will use; None when it may use none."""
    return next(iter(visible_indices()), None)


class Gpu:
    """One NVIDIA device (the first CUDA will use, unless `which` names another), or `available == False`."""

    def __init__(self, which: int | str | None = None) -> None:
        self.nvml = _nvml()
        self.handle = None
        self.index = visible_index() if which is None else which
        if self.nvml is None or self.index is None:
            return
        try:
            which = self.index
            if isinstance(which, int):
                self.handle = self.nvml.nvmlDeviceGetHandleByIndex(which)
            else:
                self.handle = self.nvml.nvmlDeviceGetHandleByUUID(which)
        except Exception:
            self.handle = None

    @property
    def available(self) -> bool:
        return self.handle is not None

    def info(self) -> dict:
        if not self.available:
            return {}
        n = self.nvml

        def get(fn, *args):
            try:
                v = fn(*args)
                return v.decode() if isinstance(v, bytes) else v
            except Exception:
                return None

        mem = get(n.nvmlDeviceGetMemoryInfo, self.handle)
        cuda = get(n.nvmlSystemGetCudaDriverVersion)
        return {
            "name": get(n.nvmlDeviceGetName, self.handle),
            "uuid": get(n.nvmlDeviceGetUUID, self.handle),
            "driver": get(n.nvmlSystemGetDriverVersion),
            "cuda_driver": f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
            "memory_total_mib": mem.total / MIB if mem else None,
            "index": self.index,
        }

    def energy_j(self) -> float | None:
        """Joules the device has used since its driver loaded (NVML's counter, Volta and later), or None."""
        try:
            return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0
        except Exception:
            return None

    def power_w(self) -> float | None:
        try:
            return self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
        except Exception:
            return None

    def processes(self) -> list[tuple[int, float | None]]:
        """(pid, used MiB) of compute processes on the device, as visible from this PID namespace."""
        try:
            procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except Exception:
            return []
        return [(p.pid, (p.usedGpuMemory / MIB) if p.usedGpuMemory else None) for p in procs]

    def read(self, pids: set[int] | None = None) -> GpuReading:
        n = self.nvml
        mem = n.nvmlDeviceGetMemoryInfo(self.handle)
        process_used = None
        if pids:
            mine = [used for pid, used in self.processes() if pid in pids and used is not None]
            process_used = sum(mine) if mine else None
        try:
            util = float(n.nvmlDeviceGetUtilizationRates(self.handle).gpu)
        except Exception:
            util = None
        return GpuReading(mem.used / MIB, mem.total / MIB, process_used, util, self.power_w())


def other_gpus(first: Gpu) -> list[Gpu]:
    """The devices CUDA will see besides `first` (a tensor-parallel run's other ranks), each readable."""
    if not first.available:
        return []
    others = [Gpu(which) for which in visible_indices(first.nvml) if which != first.index]
    return [g for g in others if g.available]


def idle_power(gpus: list[Gpu], seconds: float = 1.0, readings: int = 5) -> list[float] | None:
    """Each device's power (W), averaged over a few readings while nothing of the run holds it; None where
    one cannot say."""
    totals = [0.0] * len(gpus)
    for i in range(readings):
        each = [g.power_w() for g in gpus]
        if not each or None in each:
            return None
        totals = [t + w for t, w in zip(totals, each)]
        if i < readings - 1:
            time.sleep(seconds / (readings - 1))
    return [t / readings for t in totals]


def gpu_list(count: int | None = None, first: Gpu | None = None) -> list[Gpu]:
    """The first `count` devices CUDA will see (all of them by default), each readable, starting with
    `first` where the caller has it open already; none where NVML sees none."""
    first = first or Gpu()
    return [first, *other_gpus(first)][:count] if first.available else []
