"""The reliability battery: bad inputs and injected faults, with figures printed at the end of the run."""

import pytest

CHECKED_FILES: list[str] = []  # result files validated through the schema by the battery


@pytest.fixture
def checked():
    return CHECKED_FILES


def pytest_terminal_summary(terminalreporter):
    passed = terminalreporter.stats.get("passed", [])
    failed = terminalreporter.stats.get("failed", [])

    def count(reports, marker):
        return sum(1 for r in reports if marker in r.keywords)

    tried = count(passed, "bad_input") + count(failed, "bad_input")
    faults = count(passed, "fault") + count(failed, "fault")
    fuzzed = count(passed, "fuzz") + count(failed, "fuzz")
    if not tried and not faults and not fuzzed:
        return
    terminalreporter.write_sep("=", "reliability figures")
    terminalreporter.write_line(
        f"reliability: {tried} bad inputs tried, {count(passed, 'bad_input')} answered with a clear error; "
        f"{faults} faults injected, {count(passed, 'fault')} survived with results kept; "
        f"{len(CHECKED_FILES)} result files checked"
    )
    if fuzzed:
        import os

        from hypothesis import settings

        profile = os.environ.get("HYPOTHESIS_PROFILE", "default")
        terminalreporter.write_line(
            f"fuzzing: {count(passed, 'fuzz')} of {fuzzed} properties held over up to "
            f"{settings.get_profile(profile).max_examples} generated examples each (the CLI ones 60; "
            f"profile {profile})"
        )
