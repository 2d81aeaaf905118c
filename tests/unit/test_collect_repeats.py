"""Repeats in the report: mean, 95 % confidence interval, and a flag when the spread is over 5 %."""

import json

import pytest

from bench.report.collect import Stat, verdict
from bench.report.gather import collect
from bench.report.render import markdown
from bench.results import write_result
from tests.unit.test_results import ok_result


def repeated(tmp_path, elapsed: list[float], scenario="a"):
    for i, t in enumerate(elapsed):
        r = ok_result(scenario=scenario, repeat=i)
        m = r.metrics.model_copy(
            update={
                "elapsed_s": t,
                "output_tokens_per_s": 8 / t,
                "prompt_tokens_per_s": 10 / t,
                "total_tokens_per_s": 18 / t,
                "requests_per_s": 2 / t,
            }
        )
        write_result(r.model_copy(update={"metrics": m}), tmp_path)


def test_stat_matches_hand_computation():
    s = Stat.of([10.0, 12.0, 14.0])
    assert s.mean == 12.0 and s.n == 3
    assert s.ci95 == pytest.approx(4.303 * 2.0 / 3**0.5)  # t(2) x sd / sqrt(n)
    assert s.cv == pytest.approx(2.0 / 12.0) and s.noisy


def test_repeats_are_one_row_with_a_confidence_interval(tmp_path):
    repeated(tmp_path, [2.0, 2.02, 1.98])
    c = collect(tmp_path)
    (row,) = c.groups[0].rows
    assert len(row.results) == 3
    md = markdown(c, "hf:padded")
    assert "| hf padded | a | 3 | 4.0 ± " in md and "⚠ CV" not in md


def test_noisy_repeats_are_flagged(tmp_path):
    repeated(tmp_path, [2.0, 2.6, 1.6])
    md = markdown(collect(tmp_path), "hf:padded")
    assert "⚠ CV" in md and "Throughput varied by more than 5% (CV) over repeats: hf padded (24% over 3)" in md


def test_quiet_repeats_show_their_cv_and_startup_is_apart(tmp_path):
    repeated(tmp_path, [2.0, 2.02, 1.98])
    md = markdown(collect(tmp_path), "hf:padded")
    assert "(CV 1.0%)" in md
    assert "### Time to answer" not in md  # these results carry no wall times


def test_sampler_off_runs_are_a_row_of_their_own(tmp_path):
    repeated(tmp_path / "on", [2.0, 2.02])
    for i in range(2):
        r = ok_result(scenario="a", repeat=i)
        r = r.model_copy(update={"run_id": "off", "config": r.config.model_copy(update={"sampler": False})})
        write_result(r, tmp_path / "off")
    rows = collect(tmp_path).groups[0].rows
    assert sorted(len(row.results) for row in rows) == [2, 2]
    assert sorted(row.label.endswith("(sampler off)") for row in rows) == [False, True]


def test_crosschecks_are_read_into_a_fidelity_table(tmp_path):
    repeated(tmp_path, [2.0])
    rows = [
        {"repeat": i, "plain_tokens_per_s": p, "pagedbench_tokens_per_s": b, "difference": b / p - 1}
        for i, (p, b) in enumerate([(100.0, 101.0), (100.0, 99.0)])
    ]
    check = {"kind": "crosscheck", "stack": "hf", "scenario": "a", "repeats": rows, "complete": True}
    check |= {"mean_difference": 0.0, "threshold": 0.03, "agrees": True, "pagedbench_cv": 0.0141, "tokens_match": True}
    check |= {"sampler_overhead": 0.004, "sampler_overhead_spread": 0.01}
    (tmp_path / "crosscheck-hf.json").write_text(json.dumps(check))
    c = collect(tmp_path)
    assert len(c.crosschecks) == 1 and c.problems == []
    md = markdown(c, "hf:padded")
    assert "### Fidelity: PagedBench against a plain hand-timed loop" in md
    # A file written before the verdict was recorded gets the same test on its repeats: two repeats of
    # +1 % and -1 % leave a 95 % interval of ±12.7 %, too wide to call agreement within 3 %.
    row = "| hf a | 2 | 100, 100 | 101, 99 | +1.0%, -1.0% | +0.0% ± 12.7% (inconclusive at ±3%) | 1.4 % |"
    assert row + " +0.40% (spread 1.0%) | yes |" in md
    check |= {"difference_ci95": 0.002, "verdict": "agrees", "agrees": True}
    (tmp_path / "crosscheck-hf.json").write_text(json.dumps(check))
    assert "| +0.0% ± 0.2% (agrees at ±3%) |" in markdown(collect(tmp_path), "hf:padded")


@pytest.mark.parametrize(
    "diffs,expected",
    [
        ([-0.0065, -0.0080, -0.0072], "agrees"),  # tight repeats well inside ±3 %
        ([-0.044, 0.027, 0.166], "inconclusive"),  # the mean is outside, but so is the noise
        ([-0.080, -0.046, 0.112], "inconclusive"),  # the mean is inside, but the noise is wider
        ([0.101, 0.098, 0.103], "disagrees"),  # tight repeats clearly outside
        ([0.001], "inconclusive"),  # one repeat gives no interval
    ],
)
def test_crosscheck_verdict_weighs_the_noise(diffs, expected):
    assert verdict(Stat.of(diffs)) == expected


def test_the_report_says_what_its_files_were(tmp_path):
    repeated(tmp_path, [2.0, 2.02])
    (tmp_path / "client.json").write_text(json.dumps({"kind": "client-capacity", "loads": []}))
    (tmp_path / "broken.json").write_text("{")
    c = collect(tmp_path)
    line = markdown(c, "hf:padded").splitlines()[2]
    assert line.endswith(
        f"from {c.files} result files: 2 offline results, 1 file that is no result (named below); 1 with problems."
    )
