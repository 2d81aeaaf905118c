"""scripts/serve_crosscheck.py's verdict per figure: within the target, apart, or not told apart where the
two clients' runs interleave."""

import importlib.util

import pytest

from tests.conftest import ROOT


def _module():
    spec = importlib.util.spec_from_file_location("serve_crosscheck", ROOT / "scripts" / "serve_crosscheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    assert _module().verdict(gap, mine, theirs) == expected
