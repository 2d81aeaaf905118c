"""Property-based fuzzing of everything a user hands PagedBench: suite files, result trees, CLI options.

The property, for every generated example: the documented outcome (a value, or a UserError that the CLI
turns into exit 2; exit codes in {0, 1, 2, 3}), never another exception or a traceback, within a time
bound, and files that were there before left byte-identical. `make test` runs a few hundred examples;
`make fuzz` (HYPOTHESIS_PROFILE=fuzz) runs 10,000 or more.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cli import main
from bench.errors import UserError
from bench.files import UnreadableFile, read_json, read_yaml
from bench.report.gather import collect
from bench.report.render import markdown
from bench.results import write_result
from bench.suite import load_suite
from tests.unit.test_results import ok_result

pytestmark = pytest.mark.fuzz

settings.register_profile(
    "default", max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.register_profile(
    "fuzz", max_examples=4000, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

VALID_SUITE = {
    "name": "f",
    "model": "synthetic:tiny-llama",
    "workloads": {"w": {"requests": 4, "seed": 1, "prompt_len": 8, "output_len": 4}},
    "scenarios": [{"name": "a", "stack": "fake", "workload": "w", "warmup_requests": 0}],
}

# Values a hand-written file might hold where another was expected.
odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["max", "nan", "inf", "-1", "1e309", "0x10", "∞", "\u202e", "a\nb"]),
)
odd_values = st.recursive(
    odd_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def paths(data, prefix=()):
    """Every (path, value) of a nested structure."""
    yield prefix, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from paths(v, (*prefix, i))


@st.composite
def mutated_suites(draw):
    data = json.loads(json.dumps(VALID_SUITE))
    for _ in range(draw(st.integers(1, 3))):
        spots = list(paths(data))
        where, _ = draw(st.sampled_from(spots))
        value = draw(odd_values)
        if not where:
            data = value
            continue
        parent = data
        for part in where[:-1]:
            parent = parent[part]
        parent[where[-1]] = value
    return data


def dump(data) -> str:
    try:
        return yaml.safe_dump(data, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return json.dumps(data, default=str)


@given(mutated_suites())
def test_a_mutated_suite_loads_or_is_a_user_error(tmp_path, data):
    path = tmp_path / "s.yaml"
    path.write_text(dump(data))
    try:
        suite = load_suite(str(path))
    except UserError as e:
        assert str(e).strip()
        return
    for w in suite.workloads.values():  # what loads is finite and bounded
        assert w.num_requests <= 1_000_000 and w.prompt_tokens_upper <= 50_000_000 and math.isfinite(w.temperature)
    for s in suite.scenarios:
        assert math.isfinite(s.timeout_s)


@given(st.binary(max_size=400))
def test_any_bytes_as_a_suite_are_a_user_error_or_a_suite(tmp_path, raw):
    path = tmp_path / "s.yaml"
    path.write_bytes(raw)
    try:
        load_suite(str(path))
    except UserError:
        pass


@given(st.binary(max_size=400))
def test_any_bytes_read_as_json_or_yaml_are_data_or_unreadable(tmp_path, raw):
    path = tmp_path / "f"
    path.write_bytes(raw)
    for reader in (read_json, read_yaml):
        try:
            reader(path)
        except UnreadableFile as e:
            assert "\n" not in str(e)


@st.composite
def mutated_results(draw):
    """A valid result file's bytes, then damaged: truncated, bytes flipped, a value replaced, NaN, nesting."""
    text = ok_result().model_dump_json(indent=1, exclude_none=True)
    kind = draw(st.sampled_from(["truncate", "flip", "replace", "nan", "nest", "bytes"]))
    if kind == "truncate":
        return text.encode()[: draw(st.integers(0, len(text)))]
    if kind == "flip":
        raw = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 5))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    data = json.loads(text)
    if kind == "replace":
        where, _ = draw(st.sampled_from([p for p in paths(data) if p[0]]))
        parent = data
        for part in where[:-1]:
            parent = parent[part]
        parent[where[-1]] = draw(odd_values)
        return json.dumps(data, default=str).encode()
    if kind == "nan":
        return text.replace('"output_tokens_per_s": 4.0', '"output_tokens_per_s": NaN').encode()
    if kind == "nest":
        depth = draw(st.integers(50, 5000))
        return ("[" * depth + "]" * depth).encode()
    return draw(st.binary(max_size=300))


@given(st.lists(mutated_results(), min_size=1, max_size=4))
def test_collect_survives_any_result_tree(tmp_path, files):
    root = tmp_path / "res"
    root.mkdir(exist_ok=True)
    for old in root.iterdir():
        old.unlink()
    write_result(ok_result(scenario="good"), root)
    good = (root / "hf-good-r0.json").read_bytes()
    for i, raw in enumerate(files):
        (root / f"f{i}.json").write_bytes(raw)
    c = collect(root)
    assert c.files == len(files) + 1
    assert len(c.results) + len(c.problems) >= c.files - len(c.crosschecks)
    assert any(r.scenario == "good" for r in c.results)
    markdown(c, "hf:sequential")
    assert (root / "hf-good-r0.json").read_bytes() == good


def test_collect_lists_a_named_pipe_and_a_dangling_link_as_problems(tmp_path):
    root = tmp_path / "res"
    write_result(ok_result(), root)
    os.mkfifo(root / "pipe.json")
    (root / "gone.json").symlink_to(tmp_path / "nowhere.json")
    c = collect(root)
    problems = dict(c.problems)
    assert "regular file" in problems["pipe.json"] and "cannot read" in problems["gone.json"]
    assert len(c.results) == 1


option_values = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e309", "0", "-1", "", " ", "5%", "NaN%", "1e9", "\x00", "a\nb"]),
    st.text(max_size=12),
    st.integers(-(2**66), 2**66).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@settings(max_examples=60, deadline=None)  # up to 1,000 fake repeats legitimately take a while
@given(
    st.sampled_from(["--sample-interval-ms", "--repeats", "--run-id", "--device", "--busy-gpu"]),
    option_values,
)
def test_run_options_exit_as_documented(tmp_path, option, value):
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(VALID_SUITE))
    out = tmp_path / "out"
    before = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    result = CliRunner().invoke(
        main, ["run", "--stack", "fake", "--suite", str(suite), "--out", str(out), option, value]
    )
    assert result.exit_code in (0, 1, 2, 3), (option, value, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (option, value, result.exception)
    if result.exit_code == 2 and out.exists():
        assert sorted(p.name for p in out.rglob("*")) == before, "a refused run left files behind"


@settings(max_examples=60)
@given(option_values)
def test_compare_thresholds_exit_as_documented(tmp_path, value):
    root = tmp_path / "res"
    if not root.exists():
        write_result(ok_result(), root)
    result = CliRunner().invoke(main, ["compare", str(root), str(root), "--max-regression", value])
    assert result.exit_code in (0, 1, 2), (value, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (value, result.exception)


def _serving_json(loads: int, requests: int, status: str = "ok") -> dict:
    from bench.results.serving import LoadResult, ServingResult
    from bench.serving.client import Record
    from bench.serving.metrics import columns, summarize
    from bench.serving.schedule import Load

    entries = []
    for k in range(loads):
        load = Load("poisson", rate=float(k + 1))
        records = [Record(i, i * 0.1, chunk_s=[i * 0.1 + 0.01, i * 0.1 + 0.02], end_s=i * 0.1 + 0.02, output_tokens=2)
                   for i in range(requests)]  # fmt: skip
        s = summarize(records, load, duration_s=requests * 0.1 + 0.02)
        entries.append(LoadResult(**s.model_dump(), started_s=float(k), records=columns(records)))
    error = None if status == "ok" else "stopped"
    identity = dict(run_id="r", stack="vllm", server="vllm serve", suite="s", scenario="v", model="m", workload="w")
    return ServingResult(**identity, requests=requests, loads=entries, status=status, error=error).model_dump()


@st.composite
def candidate_trees(draw):
    """A baseline's scenarios and serving loads, each kept, dropped, corrupted, failed, moved behind a link,
    given another workload, or made unreadable in the candidate; other files beside them."""
    return {
        "scenarios": draw(st.lists(st.sampled_from(["keep", "drop", "truncate", "garbage", "fail", "link",
                                                    "workload", "slower", "nest"]), min_size=1, max_size=4)),
        "serving": draw(st.sampled_from(["none", "keep", "drop", "truncate", "fewer-loads", "old-format", "failed"])),
        "extra": draw(st.sampled_from(["none", "crosscheck", "serve-crosscheck", "foreign", "loop-link"])),
    }  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(candidate_trees())
def test_compare_never_passes_when_a_baseline_scenario_was_not_compared(tmp_path, tree):
    """Property: no traceback, exit 0/1/2 only, and exit 0 only when every baseline scenario and load was
    compared and none regressed — whatever the candidate tree holds."""
    import shutil

    from tests.unit.test_collect_repeats import repeated

    for d in ("base", "cand", "elsewhere"):
        shutil.rmtree(tmp_path / d, ignore_errors=True)
    base, cand = tmp_path / "base", tmp_path / "cand"
    names = [f"s{i}" for i in range(len(tree["scenarios"]))]
    for name in names:
        repeated(base, [40.0], scenario=name)
    if tree["serving"] != "none":
        (base / "serving-vllm-v.json").write_text(json.dumps(_serving_json(2, 5)))
    shutil.copytree(base, cand)
    lost = False
    for name, how in zip(names, tree["scenarios"]):
        f = cand / f"hf-{name}-r0.json"
        data = json.loads(f.read_text())
        lost |= how not in ("keep", "link", "slower")
        if how == "drop":
            f.unlink()
        elif how == "truncate":
            f.write_text(f.read_text()[: len(f.read_text()) // 2])
        elif how == "garbage":
            f.write_bytes(b"\xff\x00garbage")
        elif how == "nest":
            f.write_text("[" * 5000 + "]" * 5000)
        elif how == "fail":
            f.write_text(json.dumps(data | {"status": "failed", "error": "boom", "metrics": None}))
        elif how == "workload":
            data["workload"]["hash"] = "another"
            f.write_text(json.dumps(data))
        elif how == "slower":
            data["metrics"]["elapsed_s"] *= 2
            for k in ("output_tokens_per_s", "prompt_tokens_per_s", "total_tokens_per_s", "requests_per_s"):
                data["metrics"][k] /= 2
            f.write_text(json.dumps(data))
        elif how == "link":
            (tmp_path / "elsewhere").mkdir(exist_ok=True)
            f.rename(tmp_path / "elsewhere" / f.name)
            if not (cand / "linked").exists():
                os.symlink(tmp_path / "elsewhere", cand / "linked")
    served = cand / "serving-vllm-v.json"
    if tree["serving"] == "drop":
        served.unlink()
    elif tree["serving"] == "truncate":
        served.write_text(served.read_text()[:100])
    elif tree["serving"] == "fewer-loads":
        served.write_text(json.dumps(_serving_json(1, 5, "interrupted")))
    elif tree["serving"] == "old-format":
        served.write_text(json.dumps({"schema": "pagedbench-serving/1", "loads": []}))
    elif tree["serving"] == "failed":
        served.write_text(json.dumps(_serving_json(2, 5, "failed")))
    lost |= tree["serving"] in ("drop", "truncate", "fewer-loads", "old-format")
    extra = tree["extra"]
    if extra == "crosscheck":
        (cand / "x.json").write_text(json.dumps({"kind": "crosscheck", "repeats": "none"}))
        lost = True  # an unreadable cross-check is a problem the gate cannot rule out
    elif extra == "serve-crosscheck":
        xc = {"kind": "serve-crosscheck", "schema_version": 1, "suite": "s", "scenario": "v", "requests": 1}
        (cand / "x.json").write_text(json.dumps(xc))
    elif extra == "foreign":
        (cand / "x.json").write_text("{}")
        lost = True
    elif extra == "loop-link":
        os.symlink(cand, cand / "again")
    result = CliRunner().invoke(main, ["compare", str(base), str(cand)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (tree, result.exception)
    assert result.exit_code in (0, 1, 2), (tree, result.output)
    if lost:
        assert result.exit_code != 0, (tree, result.output)
    if result.exit_code == 0:
        assert "NOT COMPARED" not in result.output and result.output.strip().splitlines()[-1].startswith("PASS")


serve_options = st.one_of(
    st.tuples(st.sampled_from(["--rate", "--concurrency", "--burstiness", "--seed", "--slo", "--port", "--profile",
                               "--device", "--scenario", "--run-id"]), option_values),  # fmt: skip
)


@settings(max_examples=60, deadline=None)
@given(serve_options)
def test_serve_options_are_refused_in_one_line_before_anything_starts(tmp_path, option):
    """Each bad option answers exit 2 and one line, without a run directory; a good one is refused here
    only for want of a suite scenario that exists (so no server ever starts in this test)."""
    flag, value = option
    out = tmp_path / "out"
    args = ["serve", "--stack", "vllm", "--suite", "smoke", "--scenario", "no-such", "--out", str(out)]
    if flag == "--scenario":
        args = args[: args.index("--scenario")] + args[args.index("--scenario") + 2 :]
    result = CliRunner().invoke(main, [*args, flag, value, "--rate", "1"])
    assert result.exit_code == 2, (flag, value, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (flag, value, result.exception)
    assert "Traceback" not in result.output and not out.exists(), (flag, value, result.output)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["--run-id", "--image-prefix", "--suite", "--variant", "--gpu-product"]), option_values)
def test_k8s_jobs_arguments_are_valid_manifests_or_one_line(option, value):
    import contextlib
    import io
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "scripts"))
    import k8s_jobs

    argv = {"--run-id": "fleet-1", "--image-prefix": "registry.example/pb", "--suite": "default"} | {option: value}
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = k8s_jobs.main([x for k, v in argv.items() for x in (k, v)])
        except UserError as e:
            code, message = 2, str(e)
            assert "\n" not in message.strip()
        except SystemExit as e:
            code = e.code
    assert code in (0, 2), (option, value, code)
    if code == 0:
        docs = list(yaml.safe_load_all(out.getvalue()))
        for d in docs:
            name = d["metadata"]["name"]
            assert len(name) <= 63 and k8s_jobs.RUN_ID.pattern  # a DNS label's length
            assert all(c.islower() or c.isdigit() or c == "-" for c in name), name
            for label in d["metadata"]["labels"].values():
                assert k8s_jobs.LABEL_VALUE.fullmatch(label), label
