"""The serve cross-check's file (bench/results/serve_crosscheck.py): its verdict per figure — within the
target, apart, or not told apart where the two clients' runs interleave — and every committed file read
through its model into the report."""

import json

import pytest

from bench.results.serve_crosscheck import ServeCrosscheck, verdict
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("gap", "mine", "theirs", "expected"),
    [
        (0.01, [100.0, 102.0], [99.0, 101.0], "within ±3%"),
        (-0.067, [15.75, 14.31], [16.41, 15.79], "differs"),  # every run of one below every run of the other
        (0.054, [207.4, 167.95], [174.29, 181.72], "not told apart: the two clients' runs interleave"),
        (0.05, [105.0], [100.0], "differs"),  # one run each: nothing to weigh it against
        (0.05, [105.0, None], [100.0, 99.0], "differs"),
        (None, [None], [100.0], "not measured"),
    ],
)
def test_each_figure_is_judged_against_the_target_and_the_runs_own_spread(gap, mine, theirs, expected):
    assert verdict(gap, mine, theirs) == expected


@pytest.mark.parametrize("path", sorted(ROOT.glob("docs/results/*/crosschecks/serve-crosscheck-*.json")), ids=str)
def test_every_committed_cross_check_reads_through_the_model_and_into_the_report(path, tmp_path):
    from bench.report.gather import collect
    from bench.report.render import markdown

    x = ServeCrosscheck.model_validate(json.loads(path.read_text()))
    assert x.loads and all(len(load.rows) == 6 for load in x.loads)
    (tmp_path / path.name).write_bytes(path.read_bytes())
    c = collect(tmp_path)
    assert len(c.serve_crosschecks) == 1 and not c.problems and not c.notes
    table = markdown(c, "hf:padded").split("### Serving client against vllm bench serve")[1].split("###")[0]
    first = x.loads[0].rows[0]
    assert f"| {first.figure} |" in table and f"| {first.judged(x.target)} |" in table
    assert table.count("\n| ") == 1 + 6 * len(x.loads)  # the header and one row per figure and load
