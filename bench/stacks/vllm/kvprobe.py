"""Memory saved by sharing, the vLLM paper's way (§6.3), read inside vLLM's engine: after every scheduling
step, the logical KV blocks (the length of every request's block table: a block several requests share is
counted once for each, as each would hold it on its own) and the physical ones (the pool's blocks in use),
kept as time integrals over the steps where anything holds blocks and at the busiest moment. Saved =
1 - physical / logical. It covers every kind of sharing alike: n samples of a prompt, the beams of a beam
search (each step's beams find their common prefix in the pool), a shared prompt prefix.

The engine core may run in a process of its own, so the scheduler writes its figures into a small file
(fixed-size doubles, memory-mapped) named by `ENV`; this process arms it before a run (a new epoch: the
scheduler starts its integrals afresh) and reads it after. Every reading of the epoch (time, logical,
physical) is also stored in the same file, after the figures, at the index its step count gives — a store
into memory, no system call in the engine's step — and kept in the result as columns, so that the figures
can be recomputed from the raw readings by anyone (scripts/sharing_recompute.py does).

The scheduler is vLLM's own (the one its configuration picks, asynchronous or not) with a hook after
`schedule()` and after `update_from_output()`, in the engine's step: about 11 µs a reading with 256
requests of 32 blocks on a 2-core CI machine. Where vLLM's internals differ from those read here the probe
turns itself off and says why in the file.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

from bench.results.sections import SharingProbe, SharingTrace

ENV = "PAGEDBENCH_KV_PROBE"
SCHEDULER = "bench.stacks.vllm.kvprobe.probed_scheduler"
# epoch asked (this process), epoch applied (engine), steps, busy seconds, logical x s, physical x s, peak
# physical blocks, logical blocks then, failed (1.0 when the probe turned itself off)
_FORMAT = "<9d"
_SIZE = struct.calcsize(_FORMAT)
_ERROR_AT = _SIZE  # a failure's text follows the figures
_HEADER = 4096  # the figures, then a failure's text
_RECORD = struct.Struct("<3d")  # one reading: monotonic seconds, logical blocks, physical blocks
TRACE_LIMIT = 200_000  # readings the file holds (about 4 MB of JSON in a result); a longer run keeps none
_FILE_SIZE = _HEADER + TRACE_LIMIT * _RECORD.size  # sparse: only the readings written take room
SOURCE = (
    "engine: block-table lengths (logical) and the pool's used blocks (physical) after every scheduling step and "
    "every update from the model's output"
)


def create(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(_FILE_SIZE)


def arm(path: Path) -> None:
    """Start a new epoch: the engine's next step drops what it had summed, and writes its readings afresh."""
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), _HEADER) as m:
        epoch = struct.unpack_from("<d", m, 0)[0]
        struct.pack_into("<d", m, 0, epoch + 1)


def read(path: Path) -> SharingProbe | None:
    """What the engine summed since the last `arm`, with its readings; None when it never stepped in this
    epoch."""
    with open(path, "rb") as f:
        raw = f.read(_HEADER)
        asked, applied, steps, busy, logical, physical, peak, at_peak, failed = struct.unpack_from(_FORMAT, raw)
        if failed:
            return SharingProbe(source=SOURCE, error=raw[_ERROR_AT:].split(b"\0", 1)[0].decode(errors="replace"))
        if applied != asked:
            return None
        trace, note = _trace(f.read(int(steps) * _RECORD.size), int(steps))
    return SharingProbe(
        source=SOURCE,
        readings=int(steps),
        busy_s=busy,
        logical_blocks_mean=logical / busy if busy > 0 else None,
        physical_blocks_mean=physical / busy if busy > 0 else None,
        peak_physical_blocks=peak,
        logical_blocks_at_peak=at_peak,
        error=None if busy > 0 else "no step held any block",
        trace=trace,
        trace_note=note,
    )


def _trace(raw: bytes, steps: int) -> tuple[SharingTrace | None, str | None]:
    """The epoch's readings as columns (seconds from its first reading), or why there are none."""
    if steps > TRACE_LIMIT:
        return None, f"no trace kept: {steps} readings, over the {TRACE_LIMIT} the probe's file holds"
    rows = list(_RECORD.iter_unpack(raw))
    if not rows:
        return None, "no trace: the engine wrote no reading"
    t0 = rows[0][0]
    return SharingTrace(
        t_s=[round(t - t0, 9) for t, _, _ in rows],
        logical=[int(x) for _, x, _ in rows],
        physical=[int(x) for _, _, x in rows],
    ), None


def summary(path: Path) -> SharingProbe:
    """A run's memory saved by sharing, from what the engine wrote since `arm`."""
    return read(path) or SharingProbe(source=SOURCE, error="the engine never stepped with the probe on")


class _Accounts:
    """The integrals, advanced at each step: the state a step leaves holds until the next one."""

    def __init__(self) -> None:
        self.epoch = 0.0
        self.reset(time.monotonic())

    def reset(self, now: float) -> None:
        self.steps, self.busy, self.logical_s, self.physical_s = 0, 0.0, 0.0, 0.0
        self.peak, self.at_peak = 0.0, 0.0
        self.last_t, self.last_logical, self.last_physical = now, 0, 0

    def step(self, now: float, logical: int, physical: int) -> None:
        dt = now - self.last_t
        if self.last_logical:  # only time when something held blocks counts
            self.busy += dt
            self.logical_s += self.last_logical * dt
            self.physical_s += self.last_physical * dt
        self.steps += 1
        if physical > self.peak or (physical == self.peak and logical > self.at_peak):
            self.peak, self.at_peak = float(physical), float(logical)
        self.last_t, self.last_logical, self.last_physical = now, logical, physical

    def values(self) -> tuple[float, ...]:
        return (self.epoch, float(self.steps), self.busy, self.logical_s, self.physical_s, self.peak, self.at_peak)


def block_counts(scheduler) -> tuple[int, int]:
    """(logical, physical) blocks now: every request's block table length, summed over the KV cache groups,
    and the pool's blocks in use (its null block aside)."""
    manager = scheduler.kv_cache_manager
    logical = sum(sum(map(len, single.req_to_blocks.values())) for single in manager.coordinator.single_type_managers)
    pool = manager.block_pool
    physical = pool.num_gpu_blocks - 1 - pool.get_num_free_blocks()
    return logical, physical


class _Probe:
    """Mixed in before vLLM's scheduler class: one reading after each `schedule()` and after each
    `update_from_output()` (where finished requests give their blocks back: the engine may then sit idle,
    as between the steps of a beam search, and idle time holds nothing)."""

    def open_probe(self, path: str) -> None:
        self._probe_file = open(path, "r+b")  # noqa: SIM115 - kept for the engine's life
        self._probe_map = mmap.mmap(self._probe_file.fileno(), _FILE_SIZE)
        self._probe = _Accounts()

    def schedule(self, *args, **kwargs):
        out = super().schedule(*args, **kwargs)
        self._probe_read()
        return out

    def update_from_output(self, *args, **kwargs):
        out = super().update_from_output(*args, **kwargs)
        self._probe_read()
        return out

    def _probe_read(self) -> None:
        probe = getattr(self, "_probe", None)
        if probe is None:
            return
        try:
            self._probe_step(probe)
        except Exception as e:  # another vLLM's internals: off, with the reason
            self._probe = None
            struct.pack_into(_FORMAT, self._probe_map, 0, *([0.0] * 8), 1.0)
            text = f"the sharing probe stopped: {type(e).__name__}: {e}".encode()[: _HEADER - _SIZE - 1]
            self._probe_map[_ERROR_AT : _ERROR_AT + len(text)] = text

    def _probe_step(self, probe: _Accounts) -> None:
        now = time.monotonic()
        asked = struct.unpack_from("<d", self._probe_map, 0)[0]
        if asked != probe.epoch:
            probe.reset(now)
            probe.epoch = asked
        logical, physical = block_counts(self)
        probe.step(now, logical, physical)
        if probe.steps <= TRACE_LIMIT:  # the reading's place: its step's, in this epoch
            _RECORD.pack_into(self._probe_map, _HEADER + (probe.steps - 1) * _RECORD.size, now, logical, physical)
        struct.pack_into("<8d", self._probe_map, 8, *probe.values(), 0.0)


_CLASSES: dict[type, type] = {}


def probed_scheduler(*args, vllm_config, **kwargs):
    """Stands for vLLM's scheduler class (`scheduler_cls`): the class its configuration picks, with the
    probe mixed in, writing to the file `ENV` names."""
    from vllm.v1.core.sched.scheduler import Scheduler

    base = Scheduler
    if getattr(vllm_config.scheduler_config, "async_scheduling", False):
        from vllm.v1.core.sched.async_scheduler import AsyncScheduler

        base = AsyncScheduler
    cls = _CLASSES.setdefault(base, type(f"Probed{base.__name__}", (_Probe, base), {}))
    scheduler = cls(*args, vllm_config=vllm_config, **kwargs)
    path = os.environ.get(ENV)
    if path:
        scheduler.open_probe(path)
    return scheduler
