"""scripts/energy_crosscheck.py: a run's reported energy beside nvidia-smi's power readings over the same
wall-clock window, on hand-made readings and results."""

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.conftest import script

T0 = 1_800_000_000.0  # the sampler's start, Unix seconds


def _smi(path: Path, watts, start=T0, step=0.1, gpus=1, column="power.draw.instant") -> Path:
    lines = [f"timestamp, index, {column} [W]"]
    for i, w in enumerate(watts):
        stamp = dt.datetime.fromtimestamp(start + i * step, dt.timezone.utc).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]
        lines += [f"{stamp}, {g}, {w / gpus:.2f}" for g in range(gpus)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _result(directory: Path, joules: float, run=(2.0, 12.0)) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    phases = [
        {"name": "warmup", "start_s": 0.0},
        {"name": "run", "start_s": run[0]},
        {"name": "done", "start_s": run[1]},
    ]
    result = {"scenario": "s", "repeat": 0, "energy": {"joules": joules}, "memory": {"t0_unix": T0, "phases": phases}}
    (directory / "s-r0.json").write_text(json.dumps(result))
    return directory


def test_the_window_is_integrated_from_nvidia_smis_readings(tmp_path, capsys):
    smi = _smi(tmp_path / "smi.csv", [100.0] * 20 + [300.0] * 100 + [100.0] * 30, gpus=2)  # 300 W from 2 s to 12 s
    points = script("energy_crosscheck").read_smi(smi)
    assert points[25][1] == pytest.approx(300.0)  # the GPUs' readings summed per timestamp
    assert script("energy_crosscheck").integrate(points, T0 + 2.0, T0 + 12.0) == pytest.approx(3000.0, rel=0.01)
    assert script("energy_crosscheck").main([str(smi), str(_result(tmp_path / "r", 3030.0))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok        s #0 run: PagedBench 3,030 J, nvidia-smi 2,99") and "over 10.0 s" in out


def test_a_figure_off_by_more_than_the_tolerance_is_flagged(tmp_path, capsys):
    smi = _smi(tmp_path / "smi.csv", [300.0] * 150, column="power.draw")
    assert script("energy_crosscheck").main([str(smi), str(_result(tmp_path / "r", 3600.0))]) == 1
    out = capsys.readouterr().out
    assert out.startswith("DIFFERS") and "nvidia-smi 3,000 J (+20.0 %)" in out


def test_a_window_the_readings_do_not_cover_is_not_compared(tmp_path, capsys):
    smi = _smi(tmp_path / "smi.csv", [300.0] * 50)  # five seconds: the run went on to twelve
    assert script("energy_crosscheck").main([str(smi), str(_result(tmp_path / "r", 3000.0))]) == 2
    assert "do not cover its 10.0 s" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["missing-dir", "no-csv", "tolerance", "header"])
def test_bad_input_is_exit_2(tmp_path, bad):
    smi = _smi(tmp_path / "smi.csv", [300.0] * 150)
    results = _result(tmp_path / "r", 3000.0)
    args = [str(smi), str(results)]
    if bad == "missing-dir":
        args[1] = str(tmp_path / "nowhere")
    elif bad == "no-csv":
        args[0] = str(tmp_path / "none.csv")
    elif bad == "tolerance":
        args += ["--tolerance", "-1"]
    else:
        smi.write_text('Field "power.draw.instant" is not a valid field to query.\n')
    assert script("energy_crosscheck").main(args) == 2


def test_the_sampler_records_its_start_on_the_wall_clock():
    import time

    from bench.telemetry.sampler import Sampler

    before = time.time()
    with Sampler(interval_ms=50) as sampler:
        sampler.mark("run")
    assert before <= sampler.memory("cpu").t0_unix <= time.time()
