"""The floors and walls of docs/architecture.md hold: imports are read from the source with `ast`, every
import, also those inside functions, since a lazy import is still a dependency. The floors are read from
the document itself, so that it and the code cannot drift apart."""

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


DOC = ROOT / "docs" / "architecture.md"


def declared_layers() -> list[tuple[str, list[str]]]:
    """The floors, lowest first: (name, the module names and `package.*` patterns on it)."""
    section = DOC.read_text().split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"^\d+\. ([^:\n]+): (.+)$", section, flags=re.M)
    return [(name, re.findall(r"`([\w.*]+)`", names)) for name, names in found]


def floor(module: str, layers) -> int | None:
    """The floor a module is on: the one naming it exactly, else the one whose `package.*` is the longest
    that holds it."""
    exact = [i for i, (_, names) in enumerate(layers) if module in names]
    if exact:
        return exact[0]
    held = [
        (len(p), i)
        for i, (_, names) in enumerate(layers)
        for p in names
        if p.endswith(".*") and (module == p[:-2] or module.startswith(p[:-1]))
    ]
    return max(held)[1] if held else None


def test_every_module_is_on_exactly_one_declared_floor():
    layers = declared_layers()
    assert len(layers) >= 5, "docs/architecture.md: the Layers list was not found"
    names = [n for _, ns in layers for n in ns]
    assert len(names) == len(set(names)), "a name is declared on two floors"
    stale = [n for n in names if n.removesuffix(".*") not in MODULES]
    assert not stale, f"declared but not in bench/: {stale}"
    homeless = [m for m in MODULES if floor(m, layers) is None]
    assert not homeless, f"on no floor of docs/architecture.md: {homeless}"


def upward(imports_of) -> list[str]:
    """Every import from a module to one on a higher floor."""
    layers = declared_layers()
    name = lambda m: f"{m} ({layers[floor(m, layers)][0]})"  # noqa: E731
    return [
        f"{name(m)} imports {name(d)}"
        for m in MODULES
        for d in sorted(imports_of(m))
        if d in MODULES and floor(d, layers) > floor(m, layers)
    ]


def test_no_import_runs_up_a_floor():
    up = upward(imports)
    assert not up, "\n".join(up)


def test_the_floor_check_catches_an_import_that_runs_up():
    """Not vacuous: the results floor importing the harness, or the contract a stack's runner, is caught;
    an exact name beats a package's `.*`."""
    planted = {"bench.results.schema": {"bench.harness"}, "bench.stacks.base": {"bench.stacks.vllm.runner"}}
    up = upward(lambda m: imports(m) | planted.get(m, set()))
    assert up == [
        "bench.results.schema (results) imports bench.harness (the drivers)",
        "bench.stacks.base (the stack contract) imports bench.stacks.vllm.runner (the stacks)",
    ]
    assert floor("bench.stacks", declared_layers()) == floor("bench.stacks.base", declared_layers())


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
