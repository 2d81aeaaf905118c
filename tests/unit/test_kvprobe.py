"""Memory saved by sharing as the engine probe counts it (bench/stacks/vllm/kvprobe.py), on hand-made block
pools and schedulers: logical blocks are block-table entries, physical the pool's blocks in use, both
weighted by the time each state held, idle time left out."""

import json
import time

import pytest

from bench.results.sections import SharingProbe
from bench.stacks.vllm import kvprobe
from tests.conftest import script


class _Pool:
    def __init__(self, blocks: int, used: int) -> None:
        self.num_gpu_blocks, self.used = blocks, used

    def get_num_free_blocks(self) -> int:
        return self.num_gpu_blocks - 1 - self.used  # the null block is never free


class _Scheduler:
    """What the probe reads of vLLM's scheduler: each request's blocks per KV cache group, and the pool."""

    def __init__(self, tables: dict[str, list[int]], pool_blocks: int = 100) -> None:
        single = type("Single", (), {"req_to_blocks": tables})()
        coordinator = type("Coordinator", (), {"single_type_managers": [single]})()
        used = len({b for blocks in tables.values() for b in blocks})
        manager = type("Manager", (), {"coordinator": coordinator, "block_pool": _Pool(pool_blocks, used)})()
        self.kv_cache_manager = manager


def test_four_samples_of_one_prompt_hold_its_blocks_once():
    prompt = [1, 2, 3]  # three blocks of prompt, shared; each sample one block of its own
    tables = {f"s{i}": prompt + [10 + i] for i in range(4)}
    assert kvprobe.block_counts(_Scheduler(tables)) == (16, 7)  # 1 - 7/16 saved


def test_nothing_shared_saves_nothing():
    tables = {"a": [1, 2], "b": [3, 4, 5]}
    assert kvprobe.block_counts(_Scheduler(tables)) == (5, 5)


def test_the_integrals_weigh_each_state_by_the_time_it_held_and_skip_idle_time():
    a = kvprobe._Accounts()
    a.reset(0.0)
    a.step(0.0, logical=16, physical=7)  # held for 1 s
    a.step(1.0, logical=8, physical=8)  # held for 3 s
    a.step(4.0, logical=0, physical=0)  # idle for 10 s: not counted
    a.step(14.0, logical=4, physical=2)  # held for 1 s
    a.step(15.0, logical=0, physical=0)
    epoch, steps, busy, logical_s, physical_s, peak, at_peak = a.values()
    assert (steps, busy) == (5, 5.0)
    assert (logical_s, physical_s) == (16 + 3 * 8 + 4, 7 + 3 * 8 + 2)
    means = {"logical_blocks_mean": logical_s / busy, "physical_blocks_mean": physical_s / busy}
    r = SharingProbe(source="test", busy_s=busy, peak_physical_blocks=peak, logical_blocks_at_peak=at_peak, **means)
    assert r.saved == pytest.approx(1 - 33 / 44)
    assert (peak, at_peak) == (8.0, 8.0) and r.saved_at_peak == 0.0  # the busiest moment shared nothing


def test_arm_starts_a_new_epoch_and_a_reading_waits_for_the_engine(tmp_path):
    """A reading belongs to the epoch this process armed: none until the engine stepped in it."""
    path = tmp_path / "probe"
    kvprobe.create(path)
    kvprobe.arm(path)
    assert kvprobe.read(path) is None  # armed, the engine has not stepped since

    probe = kvprobe._Probe.__new__(kvprobe._Probe)
    probe.open_probe(str(path))
    scheduler = _Scheduler({"a": [1, 2], "b": [1, 3]})
    probe.kv_cache_manager = scheduler.kv_cache_manager
    probe._probe_step(probe._probe)
    probe._probe_step(probe._probe)
    r = kvprobe.read(path)
    assert r is not None and r.readings == 2 and r.peak_physical_blocks == 3 and r.logical_blocks_at_peak == 4
    kvprobe.arm(path)  # the next run: what the engine summed is dropped at its next step
    probe._probe_step(probe._probe)
    assert kvprobe.read(path).readings == 1


def test_a_probe_that_fails_turns_itself_off_and_says_why(tmp_path):
    path = tmp_path / "probe"
    kvprobe.create(path)

    class Base:
        def schedule(self):
            return "scheduled"

    class Probed(kvprobe._Probe, Base):
        kv_cache_manager = None  # another vLLM's internals

    p = Probed()
    p.open_probe(str(path))
    assert p.schedule() == "scheduled" and p._probe is None  # the engine goes on
    r = kvprobe.read(path)
    assert r.error.startswith("the sharing probe stopped: AttributeError")


def test_every_reading_is_kept_and_the_figures_follow_from_the_readings_alone(tmp_path):
    """The trace holds the epoch's readings only, and the recomputation from it (a script apart from the
    engine's sums) gives the engine's figures."""
    path = tmp_path / "probe"
    kvprobe.create(path)
    probe = kvprobe._Probe.__new__(kvprobe._Probe)
    probe.open_probe(str(path))
    scheduler = _Scheduler({"a": [1, 2, 3]})
    probe.kv_cache_manager = scheduler.kv_cache_manager
    probe._probe_step(probe._probe)  # an older epoch's reading: not this run's
    kvprobe.arm(path)
    for tables in ({"a": [1, 2], "b": [1, 3]}, {"a": [1, 2], "b": [1, 2], "c": [1, 2, 4]}, {}, {"d": [5]}, {}):
        probe.kv_cache_manager = _Scheduler(tables).kv_cache_manager
        probe._probe_step(probe._probe)
        time.sleep(0.002)  # an engine step's order of time
    r = kvprobe.read(path)
    assert r.trace is not None and r.trace_note is None and r.readings == 5
    assert (r.trace.logical, r.trace.physical) == ([4, 7, 0, 1, 0], [3, 3, 0, 1, 0])
    assert r.trace.t_s[0] == 0.0 and r.trace.t_s == sorted(r.trace.t_s)
    saved, at_peak = script("sharing_recompute").recompute(r.trace.model_dump())
    assert saved == pytest.approx(r.saved, abs=1e-4) and at_peak == pytest.approx(r.saved_at_peak)
    assert at_peak == pytest.approx(1 - 3 / 7)  # of equal pools, the one more requests held


def test_the_recomputation_is_the_papers_measure_on_a_hand_made_trace():
    trace = {"t_s": [0.0, 1.0, 4.0, 14.0, 15.0], "logical": [16, 8, 0, 4, 0], "physical": [7, 8, 0, 2, 0]}
    saved, at_peak = script("sharing_recompute").recompute(trace)
    assert saved == pytest.approx(1 - 33 / 44) and at_peak == 0.0  # as the engine's integrals above


def test_the_recompute_script_flags_a_result_whose_figures_do_not_follow_from_its_trace(tmp_path, capsys):
    module = script("sharing_recompute")
    trace = {"t_s": [0.0, 1.0, 2.0], "logical": [4, 4, 0], "physical": [2, 2, 0]}
    sharing = {
        "logical_blocks_mean": 4.0,
        "physical_blocks_mean": 2.0,
        "peak_physical_blocks": 2.0,
        "logical_blocks_at_peak": 4.0,
        "trace": trace,
    }
    (tmp_path / "good.json").write_text(json.dumps({"scenario": "s", "repeat": 0, "kv": {"sharing": sharing}}))
    assert module.main([str(tmp_path)]) == 0
    sharing["physical_blocks_mean"] = 1.0  # a figure the readings do not give
    (tmp_path / "bad.json").write_text(json.dumps({"scenario": "s", "repeat": 1, "kv": {"sharing": sharing}}))
    assert module.main([str(tmp_path)]) == 1
    assert "DIFFERS  s #1: saved 75.00 % (recomputed 50.00 %)" in capsys.readouterr().out
    assert module.main([str(tmp_path / "none")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert module.main([str(empty)]) == 2


def test_a_run_longer_than_the_file_holds_keeps_its_figures_and_says_why_it_has_no_trace(tmp_path, monkeypatch):
    monkeypatch.setattr(kvprobe, "TRACE_LIMIT", 2)
    path = tmp_path / "probe"
    kvprobe.create(path)
    kvprobe.arm(path)
    probe = kvprobe._Probe.__new__(kvprobe._Probe)
    probe.open_probe(str(path))
    probe.kv_cache_manager = _Scheduler({"a": [1, 2], "b": [1, 3]}).kv_cache_manager
    for _ in range(3):
        probe._probe_step(probe._probe)
    r = kvprobe.read(path)
    assert r.readings == 3 and r.peak_physical_blocks == 3 and r.trace is None
    assert r.trace_note == "no trace kept: 3 readings, over the 2 the probe's file holds"
