"""fp8 KV against the model's dtype in the report: blocks at the same memory, throughput with its interval,
and who set the pace — on committed GPU results (their NVML samples), one of them relabelled as the fp8
run with its pool as fp8 would size it."""

import json
import shutil
from statistics import fmean

from bench.report.collect import groups_of
from bench.report.gather import collect
from bench.report.kvdtype import kv_dtype_table
from tests.unit.test_headline import EVIDENCE

RUNS = EVIDENCE / "default-vllm-115704"


def test_fp8_is_set_beside_the_models_dtype(tmp_path):
    for name in ("vllm-vllm-r0.json", "vllm-vllm-r1.json"):
        shutil.copy(RUNS / name, tmp_path / name)
    fp8 = json.loads((RUNS / "vllm-vllm-r2.json").read_text())
    fp8["scenario"], fp8["repeat"] = "vllm-fp8", 0
    fp8["config"]["options"]["kv_cache_dtype"] = "fp8"
    fp8["kv"]["pool_blocks"] *= 2
    fp8["kv"]["bytes_per_token"] //= 2
    (tmp_path / "vllm-vllm-fp8-r0.json").write_text(json.dumps(fp8))

    c = collect(tmp_path)
    assert not c.problems, c.problems
    (group,) = groups_of(c.results)
    t = kv_dtype_table(group)
    base, quant = t.rows
    assert base[2] == "auto (the model's)" and quant[2] == "fp8"
    assert base[5] == "1.00x" and quant[5] == "2.00x"  # twice the blocks in the same memory
    auto = [json.loads((RUNS / n).read_text()) for n in ("vllm-vllm-r0.json", "vllm-vllm-r1.json")]
    mean = fmean(r["metrics"]["output_tokens_per_s"] for r in auto)
    assert base[8].startswith(f"{mean:,.0f} ± ")  # two repeats: a mean and its interval
    assert quant[9] == f"{fp8['metrics']['output_tokens_per_s'] / mean:.2f}x"
    busy = fmean(
        s["gpu_util_pct"] / 100
        for r in auto
        for s in r["memory"]["timeline"]
        if s["phase"] == "run" and s.get("gpu_util_pct") is not None
    )
    from bench.report.tables import pct

    assert base[10] == pct(busy) and base[11] == ("the host (GPU waits)" if busy < 0.9 else "the GPU")


def test_no_fp8_run_no_table(tmp_path):
    shutil.copy(RUNS / "vllm-vllm-r0.json", tmp_path / "a.json")
    (group,) = groups_of(collect(tmp_path).results)
    assert kv_dtype_table(group) is None


def test_fp8_against_auto_on_another_card_gives_no_speed_ratio(tmp_path):
    """On the H100 sharing set fp8 ran on a second card of the same kind: its speed against auto's, measured on
    the first, would hold the cards' and hosts' difference, so the table names why it shows none."""
    shutil.copy(RUNS / "vllm-vllm-r0.json", tmp_path / "auto.json")
    fp8 = json.loads((RUNS / "vllm-vllm-r1.json").read_text())
    fp8["scenario"] = "vllm-fp8"
    fp8["config"]["options"]["kv_cache_dtype"] = "fp8"
    fp8["environment"]["gpu"]["uuid"] = "GPU-another"
    (tmp_path / "fp8.json").write_text(json.dumps(fp8))
    (group,) = groups_of(collect(tmp_path).results)
    base, quant = kv_dtype_table(group).rows
    assert base[9] == "1.00x" and quant[9] == "— (another card)"
    assert quant[5] == "1.00x"  # blocks are memory, not time: still compared
