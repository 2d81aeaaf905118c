"""A run whose CUDA sees several devices: every one is sampled (here through a stand-in NVML reading two
devices), the result carries each device's peaks, and the report shows them with throughput per GPU."""

import os
from types import SimpleNamespace

import pytest

from bench.report.collect import groups_of
from bench.report.pergpu import per_gpu_table
from bench.results.schema import GpuPeak, Memory
from bench.telemetry import gpu as gpu_module
from bench.telemetry.gpu import Gpu, other_gpus
from bench.telemetry.sampler import Sampler
from tests.unit.test_results import ok_result

MIB = 2**20


class TwoGpus:
    """The NVML calls PagedBench makes, for two 80 GiB devices; this process holds 30 and 20 GiB on them."""

    def __init__(self):
        self.used = {0: 40 * 1024, 1: 25 * 1024}
        self.mine = {0: 30 * 1024, 1: 20 * 1024}

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        if i not in (0, 1):
            raise ValueError("no such device")
        return i

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=self.used[h] * MIB, total=80 * 1024 * MIB)

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=os.getpid(), usedGpuMemory=self.mine[h] * MIB)]

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=90)

    def nvmlDeviceGetPowerUsage(self, h):
        return 500_000

    def nvmlDeviceGetName(self, h):
        return "NVIDIA H200"

    def nvmlDeviceGetUUID(self, h):
        return f"GPU-{h}"

    def nvmlSystemGetDriverVersion(self):
        return "580.1"

    def nvmlSystemGetCudaDriverVersion(self):
        return 13000


@pytest.fixture
def nvml(monkeypatch):
    fake = TwoGpus()
    monkeypatch.setattr(gpu_module, "_nvml", lambda: fake)
    return fake


def test_every_visible_device_is_sampled_and_peaks_per_device(nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    first = Gpu()
    assert [g.index for g in other_gpus(first)] == [1]
    with Sampler(interval_ms=50, gpu=first, background=False) as s:
        s.mark("run")
        nvml.used[1], nvml.mine[1] = 60 * 1024, 50 * 1024  # the second rank grows
        s.mark("done")
    peaks = {p.index: p for p in s.memory("cuda:0").per_gpu}
    assert peaks[0].peak_used_mib == 40 * 1024 and peaks[0].peak_process_used_mib == 30 * 1024
    assert peaks[1].peak_used_mib == 60 * 1024 and peaks[1].peak_process_used_mib == 50 * 1024


def test_one_device_records_no_per_gpu_section(nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with Sampler(interval_ms=50, gpu=Gpu(), background=False) as s:
        s.mark("run")
    assert s.memory("cuda:0").per_gpu == [] and all(x.gpus is None for x in s.samples)


def test_the_report_shows_each_gpu_and_throughput_per_gpu():
    peaks = [GpuPeak(index=0, peak_used_mib=40960, peak_process_used_mib=30720),
             GpuPeak(index=1, peak_used_mib=25600, peak_process_used_mib=20480),
             GpuPeak(index=2, peak_used_mib=500, peak_process_used_mib=None)]  # fmt: skip
    memory = Memory(device="cuda:0", source="s", sample_interval_ms=50, per_gpu=peaks)
    r = ok_result(stack="vllm").model_copy(update={"memory": memory})
    table = per_gpu_table(groups_of([r])[0])
    assert [row[2] for row in table.rows] == ["0", "1", "2"]
    assert table.rows[0][3:] == ["40,960", "30,720", "2", "4", "2"]  # 4 tok/s over the 2 GPUs it used
    assert per_gpu_table(groups_of([ok_result()])[0]) is None  # one device: no table
