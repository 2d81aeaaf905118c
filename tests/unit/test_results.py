import json

import pytest

from bench.results import Result, ResultFileError, load_result, scan_results, write_result
from bench.results.schema import Check, Metrics, Percentiles

LENGTHS = {"min": 5, "mean": 5.0, "max": 5}
WORKLOAD = {
    "name": "w",
    "hash": "h",
    "requests": 2,
    "prompt_tokens": 10,
    "output_tokens": 8,
    "prompt_len": LENGTHS,
    "output_len": LENGTHS | {"min": 4, "mean": 4.0, "max": 4},
    "temperature": 0.0,
    "top_p": 1.0,
    "seed": 0,
    "spec": {"prompt_len": 5, "output_len": 4, "requests": 2},
}
CONFIG = {
    "name": "a",
    "stack": "hf",
    "mode": "padded",
    "workload": "w",
    "dtype": "float32",
    "max_model_len": 64,
    "warmup_requests": 0,
    "timeout_s": 60.0,
    "device": "cpu",
    "sample_interval_ms": 50.0,
    "options": {"batch_size": 2},
}
ENVIRONMENT = {"pagedbench": "0", "python": "3", "platform": "test"}


def ok_result(**kw) -> Result:
    p = Percentiles(p50=1, p90=2, p99=3, mean=1.5, max=3, count=2)
    m = Metrics(
        elapsed_s=2.0,
        requests=2,
        prompt_tokens=10,
        output_tokens=8,
        output_tokens_per_s=4.0,
        prompt_tokens_per_s=5.0,
        total_tokens_per_s=9.0,
        requests_per_s=1.0,
        latency_ms=p,
        latency_source="t",
    )
    c = Check(expected_requests=2, returned_requests=2, expected_output_tokens=8, returned_output_tokens=8, passed=True)
    base = dict(
        run_id="r",
        suite="s",
        scenario="a",
        stack="hf",
        mode="padded",
        repeat=0,
        status="ok",
        started_at="t",
        finished_at="t",
        workload=WORKLOAD | {"hash": "h"},
        config=CONFIG,
        environment=ENVIRONMENT,
        metrics=m,
        check=c,
    )
    return Result(**{**base, **kw})


def test_round_trip(tmp_path):
    r = ok_result()
    path = write_result(r, tmp_path)
    assert load_result(path) == r
    assert [p.name for p in tmp_path.iterdir()] == ["hf-a-r0.json"]  # no temporary file left


def test_never_overwrites(tmp_path):
    write_result(ok_result(), tmp_path)
    with pytest.raises(FileExistsError):
        write_result(ok_result(), tmp_path)


def test_throughput_must_match_tokens_over_time():
    with pytest.raises(ValueError, match="output_tokens_per_s"):
        ok_result(metrics=ok_result().metrics.model_copy(update={"output_tokens_per_s": 5.0}).model_dump())


def test_failed_result_carries_no_metrics():
    with pytest.raises(ValueError, match="must carry no metrics"):
        ok_result(status="failed", error="boom")
    r = ok_result(status="failed", error="boom", metrics=None)
    assert r.error == "boom"


def test_ok_needs_a_passed_check():
    bad = ok_result().check.model_copy(update={"passed": False})
    with pytest.raises(ValueError, match="passed check"):
        ok_result(check=bad.model_dump())


def test_bad_files_are_reported_not_raised(tmp_path):
    write_result(ok_result(), tmp_path)
    (tmp_path / "trunc.json").write_text('{"schema_version": 1, "run_')
    (tmp_path / "newer.json").write_text(json.dumps({"schema_version": 99}))
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "invalid.json").write_text(json.dumps({"schema_version": 1, "run_id": "x"}))
    found = {p.name: r for p, r in scan_results(tmp_path)}
    assert isinstance(found["hf-a-r0.json"], Result)
    assert "truncated or corrupt" in str(found["trunc.json"])
    assert "newer PagedBench" in str(found["newer.json"])
    assert "not a PagedBench result" in str(found["foreign.json"])
    assert isinstance(found["invalid.json"], ResultFileError)
