"""The examples in the engine's and the domains' docstrings run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cqrs_lab.core
import cqrs_lab.domains

MODULES = sorted(
    m.name
    for pkg in (cqrs_lab.core, cqrs_lab.domains)
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
