"""The architecture as data, checked against the source with ``ast`` (nothing is imported).

Every import of every module is collected: ``import x``, ``from x import y``, relative imports
(resolved), at module level, inside functions (``lazy``) and under ``if TYPE_CHECKING:``
(``type_only``). :data:`RULES` says, per layer, which of the package's layers and which
third-party libraries it may import (the standard library always). Besides the table:

- a domain package (``cqrs_lab.domains.bank``...) is imported only by itself: every driver
  takes a domain by reference (``load_domain("cqrs_lab.domains.bank")``), so nothing else
  names a domain's classes;
- no cycle between modules, counting imports inside functions (they only hide a cycle) and
  not counting ``TYPE_CHECKING`` ones (they never run);
- (in tests/core/purity.py) the core never reads a clock, sleeps or draws an unseeded random
  number.

:func:`check_package` returns every violation at once, one readable line each.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from tests.core.imports import Import, cycles, imports_of, modules

STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Rule:
    """What a layer may import besides the standard library: module prefixes of the package
    (its own included), libraries anywhere, and libraries only inside functions."""

    internal: frozenset[str]
    why: str
    libraries: frozenset[str] = frozenset()
    lazy_libraries: frozenset[str] = frozenset()

    def allows(self, imp: Import, package: str) -> bool:
        top = imp.target.split(".")[0]
        if top == package:
            return any(_within(imp.target, prefix) for prefix in self.internal)
        if top in STDLIB:
            return True
        if top in self.libraries:
            return True
        return top in self.lazy_libraries and (imp.lazy or imp.type_only)

    def describe(self) -> str:
        parts = sorted(self.internal) or ["nothing of the package"]
        if self.libraries:
            parts.append(", ".join(sorted(self.libraries)))
        if self.lazy_libraries:
            parts.append(f"inside functions only: {', '.join(sorted(self.lazy_libraries))}")
        return "; ".join(parts)


def _rule(internal: Iterable[str], why: str, libs: str = "", lazy: str = "") -> Rule:
    return Rule(frozenset(internal), why, frozenset(libs.split()), frozenset(lazy.split()))


C, E = "cqrs_lab.core", "cqrs_lab.errors"
CHECKS, DISPLAY = "cqrs_lab.checks", "cqrs_lab.display"
SCENARIOS = "cqrs_lab.packaged_scenarios"

#: layer (a module name, ``*`` matching one part) -> what it may import; the most specific wins
RULES: dict[str, Rule] = {
    "cqrs_lab": _rule((), "the package root holds only the version"),
    E: _rule((), "the root of every error imports nothing"),
    C: _rule((C, E), "the engine is passive and deterministic: standard library only"),
    "cqrs_lab.stores": _rule(("cqrs_lab.stores", C, E), "stores are adapters of the core's ports"),
    "cqrs_lab.stores.postgres*": _rule(
        ("cqrs_lab.stores", C, E),
        "the PostgreSQL adapter alone talks to psycopg (an optional extra); orjson, of the "
        "same extra, parses its pages",
        libs="psycopg psycopg_pool orjson",
    ),
    "cqrs_lab.stores.pg_demo": _rule(
        ("cqrs_lab.stores", C, E, "cqrs_lab.checks.application_log"),
        "notebook 7's writers and readers on PostgreSQL, recording for the lab's loss check",
        libs="psycopg psycopg_pool",
    ),
    CHECKS: _rule(
        (CHECKS, C, E),
        "checks judge any engine; pandas only where a frame is built",
        lazy="pandas",
    ),
    "cqrs_lab.domains": _rule(
        ("cqrs_lab.domains", C, E, "cqrs_lab.checks.report"),
        "a domain is built on the core's public API; hypothesis only for its strategies",
        lazy="hypothesis",
    ),
    "cqrs_lab.domains.*.http": _rule(
        ("cqrs_lab.domains", C, E, "cqrs_lab.http"),
        "a domain's hand-designed routes, imported by the HTTP driver only",
        libs="fastapi starlette pydantic",
    ),
    "cqrs_lab.sim": _rule(
        ("cqrs_lab.sim", C, E, CHECKS, DISPLAY, SCENARIOS),
        "the simulation drives the real engine and checks it; plots and backends on demand",
        libs="simpy numpy pandas",
        lazy="matplotlib joblib tqdm ray dask distributed",
    ),
    "cqrs_lab.sim.queueing": _rule(
        ("cqrs_lab.sim.queueing", E),
        "the queueing toolkit knows nothing of CQRS",
        libs="simpy numpy pandas",
        lazy="matplotlib joblib tqdm",
    ),
    "cqrs_lab.http": _rule(
        ("cqrs_lab.http", C, E, "cqrs_lab.stores", CHECKS),
        "the HTTP driver serves the engine; uvicorn only in the entry point",
        libs="fastapi starlette pydantic prometheus_client",
        lazy="uvicorn",
    ),
    "cqrs_lab.http.protocol": _rule(
        ("cqrs_lab.http", C, E),
        "the connection guard subclasses uvicorn's protocol: imported by the entry point only",
        libs="uvicorn",
    ),
    "cqrs_lab.load": _rule(
        (
            "cqrs_lab.load",
            C,
            E,
            CHECKS,
            "cqrs_lab.sim",
            "cqrs_lab.http",
            "cqrs_lab.stores",
            DISPLAY,
        ),
        "load tests drive the server, compare with the simulation; locust (gevent patches the "
        "process) and plots on demand",
        libs="numpy pandas prometheus_client httpx",
        lazy="locust gevent matplotlib tqdm",
    ),
    "cqrs_lab.load.locustfile": _rule(
        ("cqrs_lab.load", C, E, CHECKS, "cqrs_lab.http"),
        "the file Locust runs: an entry point, so locust at the top",
        libs="locust gevent numpy pandas",
    ),
    DISPLAY: _rule((DISPLAY, E), "tables for notebooks and the CLI", libs="pandas"),
    SCENARIOS: _rule((SCENARIOS,), "lists the packaged scenario files with the standard library"),
    "cqrs_lab.cli": _rule(
        ("cqrs_lab", E, DISPLAY), "the CLI finds each driver's commands by module name"
    ),
    "cqrs_lab.demo": _rule((C, E), "the demo takes a domain by reference, like every driver"),
    "cqrs_lab.testing": _rule((C, E), "hypothesis strategies for any domain", libs="hypothesis"),
}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rule_for(module: str, rules: Mapping[str, Rule] = RULES) -> tuple[str, Rule] | None:
    """The most specific rule whose layer covers ``module`` (the root covers only itself)."""
    parts = module.split(".")
    best: tuple[int, str] | None = None
    for layer in rules:
        pattern = layer.split(".")
        n = len(pattern)
        if n > len(parts) or (n == 1 and len(parts) > 1):
            continue
        if all(fnmatchcase(p, q) for p, q in zip(parts, pattern, strict=False)) and (
            best is None or n > best[0]
        ):
            best = (n, layer)
    return None if best is None else (best[1], rules[best[1]])


# -- the checks ------------------------------------------------------------------------------------


@dataclass
class Findings:
    """Every violation, grouped by kind (layer breaches by layer), as one readable message."""

    #: "layer X may import ... (why)" -> its breaches
    layers: dict[str, list[str]] = field(default_factory=dict)
    domains: list[str] = field(default_factory=list)
    cycles: list[str] = field(default_factory=list)
    unruled: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        breaches = [line for lines in self.layers.values() for line in lines]
        return [*self.unruled, *breaches, *self.domains, *self.cycles]

    def __str__(self) -> str:
        sections = [("modules no rule covers (add their layer to RULES)", self.unruled)]
        sections += list(self.layers.items())
        sections += [
            ("imports of a domain from outside it (take it by reference: load_domain)",
             self.domains),
            ("import cycles (imports inside functions count)", self.cycles),
        ]  # fmt: skip
        lines = [f"{len(self.all)} architecture violations:"]
        for title, found in sections:
            if found:
                lines.append(f"\n{title}:")
                lines.extend(f"  {line}" for line in found)
        return "\n".join(lines)


def check_package(
    root: Path, package: str = "cqrs_lab", rules: Mapping[str, Rule] = RULES
) -> Findings:
    """Check every module of ``package`` under ``root`` against ``rules``, the domain rule
    and the no-cycle rule."""
    found = Findings()
    mods = modules(root, package)
    every = {m: imports_of(m, p, mods, root) for m, p in mods.items()}
    domains_pkg = f"{package}.domains"
    domain_roots = sorted(
        {".".join(m.split(".")[:3]) for m in mods if m.startswith(domains_pkg + ".")}
    )
    for module, imps in every.items():
        ruled = rule_for(module, rules)
        if ruled is None:
            found.unruled.append(f"{module} ({mods[module].relative_to(root).as_posix()})")
            continue
        layer, rule = ruled
        for imp in imps:
            foreign = [d for d in domain_roots if _within(imp.target, d) and not _within(module, d)]
            if foreign:
                found.domains.append(f"{imp.where()}: {module} imports {imp.target}")
            elif not rule.allows(imp, package):
                how = " (inside a function)" if imp.lazy else ""
                how = " (under TYPE_CHECKING)" if imp.type_only else how
                title = f"layer {layer} may import {rule.describe()} ({rule.why})"
                found.layers.setdefault(title, []).append(
                    f"{imp.where()}: {module} imports {imp.target}{how}"
                )
    found.cycles.extend(cycles(every, mods))
    return found
