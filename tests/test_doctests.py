"""The examples in the package's docstrings run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cqrs_lab.checks
import cqrs_lab.core
import cqrs_lab.domains
import cqrs_lab.http
import cqrs_lab.sim
import cqrs_lab.stores

PACKAGES = (cqrs_lab.core, cqrs_lab.domains, cqrs_lab.sim, cqrs_lab.checks, cqrs_lab.http,
            cqrs_lab.stores)  # fmt: skip
MODULES = sorted(
    {pkg.__name__ for pkg in PACKAGES}
    | {"cqrs_lab.display"}
    | {m.name for pkg in PACKAGES for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")}
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
