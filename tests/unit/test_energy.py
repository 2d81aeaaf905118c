"""Energy per token: NVML's energy counters differenced over the timed phase on the GPUs the run used
(here a stand-in NVML for two devices), the power samples integrated where a device has no counter, and a
CPU run saying it measured none."""

import pytest

from bench.results.schema import GpuSample, Memory, Phase, Sample
from bench.telemetry.energy import phase_energy
from bench.telemetry.gpu import Gpu, idle_power
from bench.telemetry.sampler import Sampler
from tests.unit.test_per_gpu import TwoGpus


class Counted(TwoGpus):
    """Two devices with energy counters (mJ since the driver loaded) that the test advances."""

    def __init__(self):
        super().__init__()
        self.mj = {0: 1_000_000, 1: 2_000_000}

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        return self.mj[h]


@pytest.fixture
def counted(monkeypatch):
    from bench.telemetry import gpu as gpu_module

    fake = Counted()
    monkeypatch.setattr(gpu_module, "_nvml", lambda: fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    return fake


def memory_of(phases, timeline=()):
    return Memory(device="cuda", source="s", sample_interval_ms=50, phases=phases, timeline=list(timeline))


def test_the_counters_give_the_timed_phase_on_the_gpus_the_run_used(counted):
    with Sampler(interval_ms=50, gpu=Gpu(), background=False) as s:
        s.mark("warmup")
        counted.mj[0] += 5_000
        s.mark("run")
        counted.mj[0] += 300_000  # 300 J on the first GPU, 120 J on the second during the run
        counted.mj[1] += 120_000
        s.mark("done")
    memory = s.memory("cuda")
    assert memory.phases[1].energy_j == [1005.0, 2000.0]
    idle = [70.0, 40.0]  # each device's, before the engine loaded
    one = phase_energy(memory, "run", gpus=1, output_tokens=600, prompt_tokens=400, idle_power=idle)
    assert one.source == "NVML energy counters" and one.gpus == 1
    assert one.joules == pytest.approx(300.0) and one.per_output_token_j == pytest.approx(0.5)
    assert one.per_token_j == pytest.approx(0.3) and one.idle_power_w == 70.0
    assert one.mean_power_w == pytest.approx(300.0 / one.seconds)
    both = phase_energy(memory, "run", gpus=2, output_tokens=600, prompt_tokens=400, idle_power=idle)
    assert both.joules == pytest.approx(420.0)  # a split model: every GPU it held
    assert both.idle_power_w == 110.0  # the idle power of the same GPUs the energy counts


def test_without_counters_the_power_samples_are_integrated():
    samples = [Sample(t_s=t, phase="run", power_w=p) for t, p in [(0.0, 100.0), (1.0, 300.0), (3.0, 300.0)]]
    memory = memory_of([Phase(name="run", start_s=0.0), Phase(name="done", start_s=3.0)], samples)
    e = phase_energy(memory, "run", gpus=1, output_tokens=100, prompt_tokens=0)
    assert e.source == "power integrated over 3 samples" and e.joules == pytest.approx(200.0 + 600.0)
    split = [Sample(t_s=t, phase="run", gpus=[GpuSample(index=0, power_w=100.0), GpuSample(index=1, power_w=50.0)])
             for t in (0.0, 2.0)]  # fmt: skip
    assert phase_energy(memory_of(memory.phases, split), "run", 2, 10, 0).joules == pytest.approx(300.0)
    one = phase_energy(memory_of(memory.phases, samples[:1]), "run", 1, 100, 0)
    assert one.joules is None and "too few power readings" in one.error


def test_a_counter_that_went_back_is_no_measurement():
    phases = [Phase(name="run", start_s=0, energy_j=[500.0]), Phase(name="done", start_s=1, energy_j=[400.0])]
    assert phase_energy(memory_of(phases), "run", 1, 10, 0).joules is None


def test_a_cpu_run_records_none_and_says_so():
    e = phase_energy(memory_of([Phase(name="run", start_s=0)]), "run", gpus=0, output_tokens=10, prompt_tokens=1)
    assert e.joules is None and e.error == "no NVIDIA GPU: a CPU run's energy is not measured"


def test_idle_power_is_read_per_gpu(counted):
    first = Gpu()
    assert idle_power([first], seconds=0.0, readings=2) == pytest.approx([500.0])
    assert idle_power([first, Gpu(1)], seconds=0.0, readings=2) == pytest.approx([500.0, 500.0])


def test_the_answer_gives_joules_per_output_token_where_both_stacks_measured_them():
    from bench.report.collect import groups_of
    from bench.report.headline import group_headline
    from bench.results.sections import Energy
    from tests.unit.test_results import ok_result

    def measured(stack, scenario, j, watts):
        e = Energy(source="NVML energy counters", gpus=1, seconds=2.0, joules=8 * j, per_output_token_j=j,
                   per_token_j=j / 2, mean_power_w=watts, idle_power_w=71.4)  # fmt: skip
        return ok_result(stack=stack, scenario=scenario, mode="padded" if stack == "hf" else "continuous").model_copy(
            update={"energy": e}
        )

    group = groups_of([measured("hf", "a", 2.5, 300.0), measured("vllm", "b", 0.125, 650.0)])[0]
    lines, _ = group_headline(group, "hf", "vllm")
    assert (
        "Energy per output token over the timed runs: 0.125 J in vLLM (650 W on average) and 2.50 J in HF "
        "(300 W), from NVML energy counters; the GPUs drew 71 W idle." in lines
    )
    cpu = groups_of([ok_result(), ok_result(stack="vllm", scenario="b", mode="continuous")])[0]
    assert not any("Energy" in x for x in group_headline(cpu, "hf", "vllm")[0])


def test_a_price_per_gpu_hour_gives_the_cost_of_a_million_output_tokens(tmp_path):
    from bench.report.collect import Collection, groups_of
    from bench.report.cost import cost_table, per_million
    from bench.results.sections import Energy
    from tests.unit.test_results import ok_result

    assert per_million(3.6, 2, 10.0, 1000) == pytest.approx(20.0)  # 2 GPUs x 10 s at 3.6 an hour, 1,000 tokens
    on_gpu = ok_result(scenario="g").model_copy(
        update={"energy": Energy(source="NVML energy counters", gpus=2, joules=16.0, per_output_token_j=2.0)}
    )
    cpu = ok_result(stack="vllm", scenario="c", mode="continuous").model_copy(
        update={"energy": Energy(source="none", error="no NVIDIA GPU: a CPU run's energy is not measured")}
    )
    c = Collection(groups_of([on_gpu, cpu]), [], [on_gpu, cpu], 2)
    assert cost_table(c, None) is None  # no price, no cost
    rows = {r[1]: r for r in cost_table(c, 3.6).rows}
    # 4 output tok/s on 2 GPUs at 3.6 an hour: 2 x 0.001 per second / 4 tokens per second, x 1e6
    assert rows["hf padded (g)"][2:] == ["2", "4", "500", "2.00"]
    assert rows["vllm continuous (c)"][4] == "a CPU run: no GPU-hours"


def test_collect_takes_a_price_and_refuses_a_meaningless_one(tmp_path):
    from click.testing import CliRunner

    from bench.cli import main
    from bench.results import write_result
    from tests.unit.test_results import ok_result

    write_result(ok_result(), tmp_path / "r")
    out = tmp_path / "report"
    ok = CliRunner().invoke(main, ["collect", str(tmp_path / "r"), "--out", str(out), "--no-plots"],
                            env={"PAGEDBENCH_GPU_HOUR_PRICE": "2.5"})  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "### What a token costs" in (out / "report.md").read_text()
    bad = CliRunner().invoke(main, ["collect", str(tmp_path / "r"), "--out", str(out), "--gpu-hour-price", "0"])
    assert bad.exit_code == 2 and "--gpu-hour-price" in bad.output


def test_a_load_the_client_could_not_keep_up_with_has_no_cost():
    from bench.report.collect import Collection
    from bench.report.cost import cost_table
    from bench.report.gather import collect
    from tests.conftest import ROOT

    served = collect(ROOT / "docs" / "results" / "h100-2026-12-07").serving[0]
    bound = served.loads[0].model_copy(
        update={"unmeasured": {"output_tokens_per_s": "client-bound: its event loop was late by 40 ms at p99"}}
    )
    c = Collection([], [], [], 1, serving=[served.model_copy(update={"loads": [bound, *served.loads[1:]]})])
    rows = cost_table(c, 2.0).rows
    assert rows[0][3:] == ["client-bound"] * 3
    assert all(r[4] != "client-bound" and float(r[4].replace(",", "")) > 0 for r in rows[1:])
