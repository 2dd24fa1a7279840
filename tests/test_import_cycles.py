"""No module imports a module that imports it back, directly or through others.

The graph is read from the source, not from ``sys.modules``: every ``import`` statement counts,
also those inside functions and under ``if TYPE_CHECKING:``, because a lazy import hides a
cycle rather than removing it. ``from package import name`` counts as an import of the
submodule ``package.name`` when there is one, else of the package's ``__init__``. The parent
packages that Python initialises on the way to a submodule are not counted: every package
``__init__`` that re-exports its submodules would otherwise be in a cycle with each of them.

The whole tree (``nemotron`` and ``nemo_runspec`` together, so a cycle through both counts)
must be free of cycles.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
TREE = ("nemotron", "nemo_runspec")


def modules(packages: Iterable[str], root: Path = REPO) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of ``packages`` under ``root``."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules among ``known`` that module ``name`` (at ``path``) imports anywhere."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in known else base)
    edges = set()
    for target in targets:
        while target and target not in known:  # `import a.b.c` of a name that is not a module
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.add(target)
    return edges


def import_graph(packages: Iterable[str], root: Path = REPO) -> dict[str, set[str]]:
    known = modules(packages, root)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def import_cycles(packages: Iterable[str], root: Path = REPO) -> list[list[str]]:
    """One shortest cycle ``[a, b, ..., a]`` per strongly connected group of modules."""
    graph = import_graph(packages, root)
    return [_shortest_cycle(graph, group) for group in _strongly_connected(graph) if len(group) > 1]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    # Tarjan's algorithm, iterative: the graph is deep enough to worry recursion limits.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return groups


def _shortest_cycle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    members = set(group)
    best: list[str] = []
    for start in group:
        paths = {start: [start]}
        frontier = [start]
        while frontier and not (best and len(paths[frontier[0]]) >= len(best)):
            following = []
            for node in frontier:
                for child in sorted(graph[node] & members):
                    if child == start:
                        cycle = [*paths[node], start]
                        if not best or len(cycle) < len(best):
                            best = cycle
                    elif child not in paths:
                        paths[child] = [*paths[node], child]
                        following.append(child)
            frontier = following
    return best


def describe(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_checker_finds_function_level_and_type_checking_imports(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg.b import g\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("from pkg import a\n")
    assert import_cycles(["pkg"], root=tmp_path) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_no_import_cycle_in_the_tree():
    cycles = import_cycles(TREE)
    assert not cycles, f"import cycles:\n{describe(cycles)}"
