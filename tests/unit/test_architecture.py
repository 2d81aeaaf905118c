"""The walls between the rooms hold (docs/architecture.md): imports are read from the source with `ast`,
every import, also those inside functions, since a lazy import is still a dependency."""

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

BENCH = ROOT / "bench"
HEAVY = ("torch", "transformers", "vllm")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(BENCH.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module `name` imports (absolute names; `from x import y` counts x, and x.y when it is a module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
    return found


def closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        m = todo.pop()
        for dep in imports(m) if m in MODULES else ():
            if dep not in seen:
                seen.add(dep)
                if dep in MODULES:
                    todo.append(dep)
    return seen


def is_stack_code(name: str) -> bool:
    """A module inside a stack's folder (its options, runner, accounting), not the registry's declarations."""
    parts = name.split(".")
    return len(parts) >= 4 and parts[:2] == ["bench", "stacks"] and parts[2] not in ("base", "spec")


def test_the_import_graph_has_no_cycle():
    graph = {m: {d for d in imports(m) if d in MODULES and d != m} for m in MODULES}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(d) :] + [d]))
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize("room", ["bench.report", "bench.telemetry"])
def test_report_and_telemetry_import_no_engine_and_no_stack_code(room):
    for name in (m for m in MODULES if m == room or m.startswith(room + ".")):
        deps = closure(name)
        heavy = sorted(d for d in deps if d.split(".")[0] in HEAVY)
        stack_code = sorted(d for d in deps if is_stack_code(d))
        assert not heavy and not stack_code, (name, heavy, stack_code)


def test_telemetry_knows_no_stack():
    for name in (m for m in MODULES if m.startswith("bench.telemetry")):
        assert not any(d.startswith("bench.stacks") for d in closure(name)), name


@pytest.mark.parametrize("room", ["bench.config", "bench.results"])
def test_config_and_results_import_no_stack(room):
    for name in (m for m in MODULES if m == room or m.startswith(room + ".")):
        assert not any(d.startswith("bench.stacks") for d in closure(name)), (name, sorted(closure(name)))


def test_no_stack_name_is_branched_on_outside_the_stacks():
    """Only the stacks' folders name a stack; elsewhere a stack is what the registry or the result says."""
    found = []
    for name, path in MODULES.items():
        if name.startswith("bench.stacks"):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r'"(hf|vllm)"', line):
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


def test_modules_and_functions_stay_small():
    big = []
    for name, path in MODULES.items():
        source = path.read_text()
        if source.count("\n") > 400:
            big.append(f"{name}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 80:
                big.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not big, big


def test_no_reach_into_another_objects_underscored_attributes():
    """`x._y` only on `self`/`cls` (or a module's own private names)."""
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{name}:{node.lineno}: .{node.attr}")
    allowed = (": ._names_to_collectors", ": ._exit")  # prometheus_client's registry, os._exit: not ours
    found = [f for f in found if not f.endswith(allowed)]
    assert not found, found


def test_a_stack_is_added_by_adding_its_folder(tmp_path):
    """A copy of the package without the fake stack's folder knows no fake stack; the same copy with that
    folder put back, and nothing else changed, lists it, validates its knobs and runs it."""
    import shutil
    import subprocess
    import sys

    from tests.unit.test_cli import suite_file

    def pagedbench(*args):
        env = {"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin", "PAGEDBENCH_CACHE": str(tmp_path)}
        cmd = [sys.executable, "-m", "bench", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)

    shutil.copytree(BENCH, tmp_path / "src" / "bench", ignore=shutil.ignore_patterns("__pycache__", "fake"))
    suite = suite_file(tmp_path)
    missing = pagedbench("run", "--stack", "fake", "--suite", suite, "--out", tmp_path / "out")
    assert missing.returncode == 2 and "'fake' is not one of 'hf', 'vllm'" in missing.stderr, missing.stderr
    shutil.copytree(BENCH / "stacks" / "fake", tmp_path / "src" / "bench" / "stacks" / "fake")
    listed = pagedbench("list")
    assert listed.returncode == 0 and "fake" in listed.stdout.split("Stacks:")[1]
    ran = pagedbench("run", "--stack", "fake", "--suite", suite, "--out", tmp_path / "out", "--run-id", "x")
    assert ran.returncode == 1 and "1/2 scenarios ok" in ran.stdout, ran.stderr  # its first scenario fails by design
    assert (tmp_path / "out" / "x" / "fake-second-r0.json").is_file()
