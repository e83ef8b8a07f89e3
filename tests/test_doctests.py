"""The examples in the package's docstrings run: the one place that runs them.

Modules are found in the source (every package: core, domains, sim, checks, http, stores,
load, and the top-level modules) and read with ``ast``; only those whose docstrings hold an
example are imported and run, and each must run at least one (an example doctest cannot
find, in a nested function for instance, never runs: that fails too). A ``>>> #`` line is a
comment dressed as an example: write a real one, or prose.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cqrs_lab"
PROMPT = re.compile(r"^[ \t]*>>>", re.MULTILINE)
COMMENT_ONLY = re.compile(r"^[ \t]*>>>[ \t]*#.*$", re.MULTILINE)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def docstrings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of the module's docstring and of every class and function in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    out = []
    for node in ast.walk(tree):
        if isinstance(node, kinds) and (text := ast.get_docstring(node, clean=False)):
            out.append((node.body[0].lineno, text))
    return out


SOURCES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
WITH_EXAMPLES = sorted(
    name for name, path in SOURCES.items() if any(PROMPT.search(t) for _, t in docstrings(path))
)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name}: its docstring examples are where doctest never looks"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_every_package_has_examples_that_run() -> None:
    packages = {name for name, path in SOURCES.items() if path.name == "__init__.py"}
    top = {n.split(".")[1] for n in packages if n.count(".") == 1}
    covered = {n.split(".")[1] for n in WITH_EXAMPLES if n.count(".") >= 1}
    assert {"core", "domains", "sim", "checks", "http", "stores", "load"} <= top
    assert top - covered == set()
    assert {"cqrs_lab.demo", "cqrs_lab.testing", "cqrs_lab.display"} <= set(WITH_EXAMPLES)


def test_no_example_is_only_a_comment() -> None:
    hidden = [
        f"{path.relative_to(PACKAGE.parent)}:{line + text[: m.start()].count(chr(10))}: "
        f"{m.group().strip()}"
        for path in SOURCES.values()
        for line, text in docstrings(path)
        for m in COMMENT_ONLY.finditer(text)
    ]
    assert hidden == [], "write these as examples that run, or as prose:\n" + "\n".join(hidden)


def test_the_finder_sees_examples_only_where_they_are(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        '"""Module.\n\n>>> 1 + 1\n2\n"""\n'
        'def f():\n    """Prose only; ``>>>`` inline is not an example."""\n'
        'class C:\n    def g(self):\n        """\n        >>> # hidden\n        """\n'
        'TEXT = """\n>>> not a docstring\n"""\n'
    )
    found = docstrings(source)
    assert [line for line, text in found if PROMPT.search(text)] == [1, 10]
    assert [m.group().strip() for _, t in found for m in COMMENT_ONLY.finditer(t)] == [
        ">>> # hidden"
    ]
