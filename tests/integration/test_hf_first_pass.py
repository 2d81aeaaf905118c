"""scripts/hf_first_pass.py on the real transformers (CPU, a tiny model): one process per torch setting, each
timing four passes of the runner's own generate_batch. Its timings are GPU evidence (docs/results), not
asserted here."""

import json

import pytest

from tests.conftest import run_script

pytestmark = pytest.mark.integration


def test_first_pass_probe_records_every_setting_s_passes(tmp_path):
    out = tmp_path / "first-pass.json"
    r = run_script("hf_first_pass", "--model", "synthetic:tiny-llama", "--steps", 5, "--rows", 3, "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    settings = report["settings"]
    assert list(settings) == [
        "cudnn_attention: true",
        "cudnn_attention: false",
        "cudnn_attention: true, expandable segments",
    ]
    for entry in settings.values():
        assert "error" not in entry, entry.get("error")
        passes = entry["passes"]
        assert list(passes) == ["a1", "a2", "b1", "b2"]
        for p in passes.values():
            assert p["rows"] == 3 and p["steps"] == 5 and p["seconds"] > 0 and p["step_ms"]["p50"] > 0
            assert p["torch_peak_reserved_mib"] is None  # no GPU here: no made-up zero
        assert passes["a1"]["width"] == passes["a2"]["width"] and entry["sdpa_backends"]
