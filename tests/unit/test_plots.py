"""Every chart of the reports built from the committed GPU results: a sane size, not mostly blank, and no
chart drawn from too little (a line through one batch size)."""

import base64
import io

import pytest

from bench.report.collect import sampled
from bench.report.gather import collect
from bench.report.plots import figures
from bench.results.sections import KvBatches
from tests.unit.test_recollect import EVIDENCE as RESULTS_DIR
from tests.unit.test_recollect import RECORDED

PIL = pytest.importorskip("PIL.Image")
# Every evidence directory with results (test_recollect holds that each is recorded there); one of
# cross-checks and client figures alone has nothing to draw.
EVIDENCE = [
    p
    for p in sorted(RESULTS_DIR.glob("*/"))
    if (RECORDED / f"{p.name}.csv").exists() or (RECORDED / f"{p.name}.serving.md").exists()
]


def blank_share(png: bytes) -> float:
    """Share of the image's pixel rows that are entirely white."""
    image = PIL.open(io.BytesIO(png)).convert("L")
    width, height = image.size
    data = image.tobytes()
    rows = [data[y * width : (y + 1) * width] for y in range(height)]
    return sum(1 for row in rows if min(row) >= 250) / height


def check_chart(evidence, title, uri) -> None:
    png = base64.b64decode(uri.split(",", 1)[1])
    width, height = PIL.open(io.BytesIO(png)).size
    assert 300 <= width <= 1400 and 150 <= height <= 1600, (evidence.name, title, width, height)
    assert blank_share(png) < 0.5, (evidence.name, title, blank_share(png))


@pytest.mark.parametrize("evidence", EVIDENCE, ids=[p.name for p in EVIDENCE])
def test_charts_are_sized_and_drawn(evidence):
    c = collect(evidence)
    assert c.groups or c.serving
    if c.serving:
        from bench.report.serving_plots import serving_figures

        made = serving_figures(c.serving)
        assert made, "a serving sweep of open-loop rates draws its charts"
        for title, uri in made:
            check_chart(evidence, title, uri)
    # collect lists a result the report cannot render as a problem: a bug in the report must not drop real ones
    assert not [p for p in c.problems if "unexpected type" in p[1]], c.problems
    for g in c.groups:
        made = figures(g)
        titles = [title for title, _ in made]
        for title, uri in made:
            check_chart(evidence, f"{g.model} {title}", uri)
        sizes: dict[tuple, set] = {}
        for r in g.rows:
            searched = isinstance(r.first.kv, KvBatches) and r.first.kv.capacity is not None
            if r.batch_size is not None and sampled(r.first) and not searched:
                sizes.setdefault((r.first.stack, r.first.mode), set()).add(r.batch_size)
        assert ("Throughput vs batch size" in titles) == any(len(v) >= 2 for v in sizes.values()), (g.model, sizes)
