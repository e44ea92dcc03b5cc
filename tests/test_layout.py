"""The project's layout: no import cycle, the one-way flow datasets -> encoders -> methods -> bench,
bench's subpackages in their declared order, and folders small enough to read at a glance."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("datasets", "encoders", "methods", "bench")   # the flow: each imports only those before it
# bench's subpackages, same rule
BENCH_ORDER = ("measure", "run", "distributed", "scale", ("report", "regress", "export"), "cli")
MAX_MODULES = 12


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """{dotted module name: file} of every module of ``packages`` under ``root`` (a package is its __init__)."""
    mods = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """{module: project modules it imports}, counting imports inside functions too (a lazy import
    is still a dependency); ``from pkg import name`` counts as ``pkg.name`` when that is a module."""
    mods = module_files(root, packages)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in mods else target)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_violations(graph: dict[str, set[str]], order: tuple, level: int) -> list[str]:
    """Edges that go against ``order``: a part (the name at dotted ``level``) may import itself and
    the parts listed before it; a tuple entry is a group of peers that may not import each other."""
    rank = {}
    for i, entry in enumerate(order):
        for name in (entry if isinstance(entry, tuple) else (entry,)):
            rank[name] = i

    def part(module: str) -> str | None:
        bits = module.split(".")
        return bits[level] if len(bits) > level else None

    bad = []
    for src, deps in sorted(graph.items()):
        a = part(src)
        for dst in sorted(deps):
            b = part(dst)
            if a in rank and b in rank and a != b and rank[b] >= rank[a]:
                bad.append(f"{src} imports {dst}")
    return bad


def write_tree(root: Path, files: dict[str, str]) -> None:
    """Write ``{relative path: source}`` under ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_planted_cycle_is_found_through_a_lazy_relative_import(tmp_path):
    write_tree(tmp_path, {"datasets/__init__.py": "", "datasets/a.py": "from .b import x\n",
                          "datasets/b.py": "def x():\n    from datasets import a\n",
                          "datasets/c.py": "import datasets.a\n"})
    cycle = find_cycle(import_graph(tmp_path, ("datasets",)))
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"datasets.a", "datasets.b"}


def test_a_tree_without_cycles_passes_and_layers_are_checked(tmp_path):
    write_tree(tmp_path, {"datasets/__init__.py": "", "datasets/a.py": "", "bench/__init__.py": "",
                          "bench/run/__init__.py": "", "bench/run/r.py": "from bench.report import t\n",
                          "bench/report/__init__.py": "", "bench/report/t.py": "from datasets import a\n"})
    graph = import_graph(tmp_path, ("datasets", "bench"))
    assert find_cycle(graph) is None
    assert layer_violations(graph, PACKAGES, 0) == []
    assert layer_violations(graph, BENCH_ORDER, 1) == ["bench.run.r imports bench.report.t"]


def test_the_project_has_no_import_cycle():
    assert find_cycle(import_graph(ROOT)) is None


def test_the_flow_goes_one_way_datasets_encoders_methods_bench():
    assert layer_violations(import_graph(ROOT), PACKAGES, 0) == []


def test_methods_never_import_audio_data_or_encoders():
    graph = import_graph(ROOT)
    bad = [f"{m} imports {d}" for m, deps in graph.items() if m.startswith("methods")
           for d in deps if not d.startswith("methods")]
    assert bad == []


def test_bench_subpackages_import_only_those_before_them():
    assert layer_violations(import_graph(ROOT), BENCH_ORDER, 1) == []


@pytest.mark.parametrize("package", PACKAGES + ("tests",))
def test_no_folder_holds_more_than_a_dozen_modules_except_the_method_plugins(package):
    for folder in [ROOT / package, *(p for p in (ROOT / package).rglob("*") if p.is_dir())]:
        if folder == ROOT / "methods" or "__pycache__" in folder.parts:
            continue
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= MAX_MODULES, f"{folder.relative_to(ROOT)} holds {len(modules)} modules"


def test_every_subpackage_opens_with_a_docstring_of_its_role():
    for init in sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.relative_to(ROOT)} has no docstring saying what it owns"
