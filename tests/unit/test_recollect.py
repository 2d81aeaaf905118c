"""The committed GPU evidence re-collects to the same figures: the CSV of every evidence directory, written
by this code, equals the one recorded when those results were first collected (tests/data/recollect/);
for serving results, the report's "Online serving" table does."""

import csv

import pytest

from bench.report import write_report
from tests.conftest import ROOT

EVIDENCE = ROOT / "docs" / "results"
RECORDED = ROOT / "tests" / "data" / "recollect"


def rows(path):
    with open(path, newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: (r["run_id"], r["stack"], r["scenario"], r["repeat"]))


@pytest.mark.parametrize("recorded", sorted(RECORDED.glob("*.csv")), ids=lambda p: p.stem)
def test_evidence_recollects_to_the_recorded_figures(recorded, tmp_path):
    write_report(EVIDENCE / recorded.stem, tmp_path, plots=False)
    now, before = rows(tmp_path / "results.csv"), rows(recorded)
    assert len(now) == len(before) > 0
    for a, b in zip(now, before):
        recorded = {k: a.get(k) for k in b}  # the columns the recording had, figure for figure
        assert recorded == b, f"{b['run_id']} {b['scenario']}: {set(recorded.items()) ^ set(b.items())}"
        # A column added since holds nothing for these results: they predate what it reads.
        assert all(v == "" for k, v in a.items() if k not in b), {k: v for k, v in a.items() if k not in b}


def serving_table(report_md: str) -> str:
    """The first "Online serving" table, below its title (which names the model and device)."""
    return report_md.split("### Online serving", 1)[1].split("\n", 1)[1].split("\n## ", 1)[0].strip()


@pytest.mark.parametrize("recorded", sorted(RECORDED.glob("*.serving.md")), ids=lambda p: p.name.split(".")[0])
def test_serving_evidence_recollects_to_the_recorded_table(recorded, tmp_path):
    write_report(EVIDENCE / recorded.name.split(".")[0], tmp_path, plots=False)
    assert serving_table((tmp_path / "report.md").read_text()) == recorded.read_text().strip()


def test_every_evidence_directory_is_recorded():
    """Every directory with results (offline or serving) is recorded; one of cross-checks and client
    figures alone holds no result, and every file of it is named for what it is."""
    from bench.report.gather import collect

    dirs = set()
    for p in EVIDENCE.iterdir():
        if p.is_dir() and any(p.rglob("*.json")):
            c = collect(p)
            if c.results or c.serving or c.problems:
                dirs.add(p.name)
            else:
                assert c.notes or c.crosschecks, p.name
    recorded = {p.stem for p in RECORDED.glob("*.csv")} | {p.name.split(".")[0] for p in RECORDED.glob("*.serving.md")}
    assert dirs == recorded
