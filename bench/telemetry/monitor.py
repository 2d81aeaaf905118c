"""Device and host readings, taken in a process of their own while a run is timed.

The sampler starts `python -m bench.telemetry.monitor PID INTERVAL_S FILE [--no-gpu]`: it reads NVML and
psutil every INTERVAL_S for PID and its children, appends one JSON line per reading to FILE, and exits
when its stdin closes or PID is gone. Sampling in another process keeps it off the measured process's
interpreter lock: a sampling thread in the same process slows a host-bound `generate()` loop it measures.
Only the standard library, psutil and NVML are imported here.
"""

from __future__ import annotations

import json
import select
import signal
import sys
import time

import psutil

from bench.telemetry.gpu import Gpu, other_gpus

MIB = 1024 * 1024


def measure(gpu: Gpu | None, process: psutil.Process, others: list[Gpu] = ()) -> dict:
    """One reading: device memory, utilisation and power (NVML) and host RSS and CPU of `process` and its
    children (vLLM's engine core is a child process); with `others` (the other devices of a run that
    spans several), each device's memory and this run's share of it under `gpus`."""
    try:
        procs = [process] + process.children(recursive=True)
    except psutil.Error:
        procs = [process]
    reading: dict = {}
    if gpu is not None and gpu.available:
        pids = {p.pid for p in procs}
        devices = {g.index: _read(g, pids) for g in [gpu, *others]}  # each device read once
        r = devices[gpu.index]
        if r is not None:
            reading |= {
                "device_used_mib": r.used_mib,
                "process_used_mib": r.process_used_mib,
                "gpu_util_pct": r.util_pct,
                "power_w": r.power_w,
            }
        if others:
            reading["gpus"] = [
                {"index": i}
                | ({"used_mib": d.used_mib, "process_used_mib": d.process_used_mib, "power_w": d.power_w} if d else {})
                for i, d in devices.items()
            ]
    rss = 0
    for p in procs:
        try:
            rss += p.memory_info().rss
        except psutil.Error:
            pass
    try:
        cpu = process.cpu_percent(None)
    except psutil.Error:
        cpu = None
    return reading | {"host_rss_mib": rss / MIB if rss else None, "host_cpu_pct": cpu}


def _read(gpu: Gpu, pids: set[int]):
    """The device's reading, or None when NVML could not give one this time."""
    try:
        return gpu.read(pids)
    except Exception:
        return None


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run it serves handles Ctrl-C and then stops it
    pid, interval_s, path = int(argv[0]), float(argv[1]), argv[2]
    gpu = Gpu() if "--no-gpu" not in argv[3:] else None
    others = other_gpus(gpu) if gpu is not None else []
    try:
        process = psutil.Process(pid)
        process.cpu_percent(None)
    except psutil.Error:
        return 0
    with open(path, "a", buffering=1) as out:
        while True:
            t = time.monotonic()
            reading = measure(gpu, process, others)
            out.write(json.dumps({"t": t, **reading}) + "\n")
            if not process.is_running():
                return 0
            wait = max(0.0, interval_s - (time.monotonic() - t))
            if select.select([sys.stdin], [], [], wait)[0]:  # stdin readable: closed by the sampler
                if not sys.stdin.read(1):
                    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
