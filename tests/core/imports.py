"""Every import of a package's modules, read with ``ast`` (nothing is imported), and the
cycles among them.

An :class:`Import` is one target of an ``import x`` / ``from x import y`` (relative ones
resolved), marked ``lazy`` inside a function and ``type_only`` under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen from ``source``."""

    source: str
    target: str
    path: Path
    line: int
    lazy: bool = False  # inside a function: runs when the function is first called
    type_only: bool = False  # under ``if TYPE_CHECKING:``: never runs

    def where(self) -> str:
        return f"{self.path.as_posix()}:{self.line}"


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root`` (the folder holding ``package/``)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, lazy: bool, type_only: bool) -> Iterator[tuple[ast.AST, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, lazy, type_only
        inner_lazy = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, lazy, True
                yield from _walk(stmt, lazy, True)
            for stmt in child.orelse:
                yield stmt, lazy, type_only
                yield from _walk(stmt, lazy, type_only)
            continue
        yield from _walk(child, inner_lazy, type_only)


def imports_of(
    module: str, path: Path, known: Iterable[str] = (), root: Path | None = None
) -> list[Import]:
    """Every import in the module's source; ``from p import m`` targets ``p.m`` when that is a
    module in ``known``. Paths are shown relative to ``root`` when given."""
    known = set(known)
    shown = path.relative_to(root) if root is not None else path
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    here = module.split(".") if is_package else module.split(".")[:-1]
    out = []
    for node, lazy, type_only in _walk(tree, False, False):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            subs = [f"{origin}.{a.name}" for a in node.names if f"{origin}.{a.name}" in known]
            targets = subs + ([origin] if len(subs) < len(node.names) else [])
        else:
            continue
        out.extend(Import(module, t, shown, node.lineno, lazy, type_only) for t in targets)
    return out


def cycles(every: Mapping[str, list[Import]], known: Iterable[str]) -> list[str]:
    """One cycle per strongly connected group of modules, as ``a -> b -> a`` with lines."""
    known = set(known)
    graph: dict[str, dict[str, Import]] = defaultdict(dict)
    for module, imps in every.items():
        for imp in imps:
            if imp.type_only or imp.target not in known or imp.target == module:
                continue
            graph[module].setdefault(imp.target, imp)
    out = []
    for group in _strongly_connected(sorted(known), graph):
        if len(group) < 2:
            continue
        path = _cycle_through(min(group), group, graph)
        steps = [
            f"{a} -> {b} ({graph[a][b].where()}{', in a function' if graph[a][b].lazy else ''})"
            for a, b in pairwise(path)
        ]
        out.append(f"{len(group)} modules in a cycle: " + "; ".join(steps))
    return out


def _strongly_connected(
    nodes: list[str], graph: Mapping[str, Mapping[str, Import]]
) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the package's module count
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            groups.append(group)

    for v in nodes:
        if v not in index:
            visit(v)
    return groups


def _cycle_through(
    start: str, group: set[str], graph: Mapping[str, Mapping[str, Import]]
) -> list[str]:
    """The shortest path from ``start`` back to itself inside ``group`` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph.get(v, {})):
                if w == start:
                    back = [v]
                    while back[-1] != start:
                        back.append(previous[back[-1]])
                    return [*reversed(back), start]
                if w in group and w not in previous:
                    previous[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")
