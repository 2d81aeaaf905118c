import time

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
