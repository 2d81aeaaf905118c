import time

import psutil

from bench.telemetry.gpu import Gpu
from bench.telemetry.sampler import Sampler


class NoGpu(Gpu):
    def __init__(self):
        self.nvml, self.handle = None, None


def test_background_sampling_and_phases():
    with Sampler(10, NoGpu()) as s:
        s.mark("run")
        time.sleep(0.3)
        s.mark("done")
    run = [x for x in s.samples if x.phase == "run"]
    assert len(run) >= 10 and all(x.host_rss_mib > 0 for x in run)
    mem = s.memory("cpu")
    assert "no NVIDIA device" in mem.source and mem.peak_host_rss_mib > 0
    assert [p.name for p in mem.phases] == ["run", "done"] and mem.phases[0].end_s == mem.phases[1].start_s


def test_sampler_off_samples_only_at_boundaries():
    with Sampler(10, NoGpu(), background=False) as s:
        s.mark("run")
        time.sleep(0.2)
        s.mark("done")
    assert len(s.samples) == 3  # two marks and the final sample
    assert "phase boundaries only" in s.memory("cpu").source


def _monitors() -> list[psutil.Process]:
    return [c for c in psutil.Process().children() if "bench.telemetry.monitor" in " ".join(c.cmdline())]


def test_readings_come_from_a_separate_process_that_stops_with_the_sampler():
    with Sampler(10, NoGpu()) as s:
        time.sleep(0.2)
        assert len(_monitors()) == 1  # device and host readings: off this interpreter
        s.engine_probe = lambda: {"kv_usage": 0.5}  # stack gauges: read here, by a thread
        s.mark("run")
        time.sleep(0.2)
        s.mark("done")
    assert _monitors() == []
    assert [x.t_s for x in s.samples] == sorted(x.t_s for x in s.samples)
    assert s.engine_peak("kv_usage", {"run"}) == 0.5
    monitor = [x for x in s.samples if x.phase == "run" and x.engine is None and x.host_rss_mib]
    assert len(monitor) >= 5
    assert "separate process" in s.memory("cpu").source


def test_sampler_off_starts_no_monitor():
    with Sampler(10, NoGpu(), background=False):
        assert _monitors() == []
