import pytest

from bench.breakdown import memory_breakdown
from bench.results.schema import Memory
from bench.results.sections import KvBatches, KvPool


def test_hf_breakdown_adds_up(tmp_path):
    m = Memory(
        device="cuda",
        source="t",
        sample_interval_ms=50,
        peak_device_used_mib=5000,
        device_used_before_mib=500,
        peak_process_used_mib=4000,
        torch_peak_allocated_mib=3000,
        torch_peak_reserved_mib=3500,
        weights_mib=1000,
    )
    kv = KvBatches(reserved_bytes_peak=1500 * 2**20, live_bytes_at_peak=600 * 2**20, source="read")
    b = memory_breakdown(m, kv, tmp_path)
    assert b.weights.mib == 1000 and b.kv_reserved.mib == 1500 and b.kv_live.mib == 600
    assert b.activations.mib == 500  # 3000 allocated - 1000 weights - 1500 KV
    assert b.runtime_overhead.mib == 500  # 4000 used - 3500 reserved
    assert b.allocator_slack.mib == 500
    assert all(e.how for e in dict(b).values() if e is not None)


def test_vllm_breakdown_without_torch_stats(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 2**20)
    m = Memory(device="cuda", source="t", sample_interval_ms=50, peak_device_used_mib=9000, device_used_before_mib=1000)
    kv = KvPool(reserved_bytes_peak=6000 * 2**20, utilization_at_peak=0.25, source="engine")
    b = memory_breakdown(m, kv, tmp_path)
    assert b.process_used.mib == 8000 and "minus used before" in b.process_used.how
    assert b.weights.mib == 1.0 and "on disk" in b.weights.how
    assert b.kv_live.mib == pytest.approx(1500)
    assert b.other.mib == pytest.approx(8000 - 1 - 6000)


def test_no_gpu_no_breakdown(tmp_path):
    assert memory_breakdown(Memory(device="cpu", source="t", sample_interval_ms=50), None, tmp_path) is None


def test_the_report_shows_where_all_of_hf_s_memory_went():
    """On the H100, HF's process held 73 GB for n = 6 samples while its tensors peaked under 8 GB: the
    breakdown table's columns add up to the process's memory, the allocator's slack among them."""
    from bench.report.gather import collect
    from bench.report.tables import breakdown_table
    from tests.conftest import ROOT

    c = collect(ROOT / "docs" / "results" / "h100-2026-12-07-sharing" / "results" / "sharing-hf-174226")
    (group,) = [g for g in c.groups if g.workload.name == "alpaca-n6"]
    table = breakdown_table(group)
    (row,) = table.rows
    cells = dict(zip(table.headers, row))
    mib = {k: float(v.replace(",", "")) for k, v in cells.items() if k != "stack / mode" and v != "—"}
    assert mib["allocator slack"] > 0.8 * mib["process used"]
    parts = ("weights", "kv reserved", "activations", "allocator slack", "runtime overhead")
    assert sum(mib[k] for k in parts) == pytest.approx(mib["process used"], abs=3)  # each cell rounded to 1 MiB
