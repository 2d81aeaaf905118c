"""The battery's figures in docs/testing.md are the battery's own."""

import re
import subprocess
import sys

from tests.conftest import ROOT


def collected(marker: str) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", marker, "tests/reliability"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return sum(1 for line in out.stdout.splitlines() if "::" in line)


def test_the_testing_page_states_the_battery():
    text = (ROOT / "docs" / "testing.md").read_text()
    m = re.search(
        r"\*\*(\d+) bad inputs tried, (\d+) answered with a clear error; (\d+) faults injected, (\d+) "
        r"survived",
        text,
    )
    assert m, "docs/testing.md lacks the reliability figures"
    tried, answered, faults, survived = map(int, m.groups())
    non_root_only = 1  # the unreadable-file case, skipped as root
    assert tried == answered and faults == survived
    assert tried == collected("bad_input") - non_root_only
    assert faults == collected("fault")
