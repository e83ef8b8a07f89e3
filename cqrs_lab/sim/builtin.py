"""The scenarios shipped in the package (``cqrs_lab/scenarios/*.toml``), and the one place
that turns what a user typed into a scenario: a file path or a packaged scenario's name.

``cqrs-lab simulate`` with no scenario runs the packaged ``baseline``, so ``make demo`` needs
nothing outside the package; ``cqrs-lab scenarios`` lists them.

>>> builtin_scenario("baseline").workload.arrivals.rate
500.0
>>> "crashes_effectively_once" in BUILTIN
True
>>> resolve_scenario("crashes_effectively_once").name
'crashes-effectively-once'
>>> resolve_scenario("basline")
Traceback (most recent call last):
...
cqrs_lab.errors.ScenarioError: 'basline': no such file and no packaged scenario of that name; ...
"""

from __future__ import annotations

import argparse
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from cqrs_lab.errors import ScenarioError
from cqrs_lab.sim.scenario import Scenario
from cqrs_lab.sim.scenario_load import load_scenario

__all__ = [
    "BUILTIN",
    "builtin_scenario",
    "packaged_descriptions",
    "register",
    "resolve_scenario",
]


def _folder() -> Traversable:
    return resources.files("cqrs_lab") / "scenarios"


#: the packaged scenarios' names, sorted (``baseline``, ``crashes_effectively_once``, ...)
BUILTIN: tuple[str, ...] = tuple(
    sorted(f.name.removesuffix(".toml") for f in _folder().iterdir() if f.name.endswith(".toml"))
)


def builtin_scenario(name: str = "baseline") -> Scenario:
    """A scenario shipped inside the package, by name (:data:`BUILTIN`)."""
    if name not in BUILTIN:
        raise ScenarioError(
            f"{name!r}: no packaged scenario of that name; packaged: {', '.join(BUILTIN)} "
            "(or pass the path of a scenario file)"
        )
    with resources.as_file(_folder() / f"{name}.toml") as path:
        return load_scenario(path)


def resolve_scenario(ref: str | Path | None) -> Scenario:
    """The scenario a user named: the path of a file, or a packaged scenario's name
    (``baseline``, with or without ``.toml``); None is the packaged baseline. An existing
    file wins over a packaged name."""
    if ref is None:
        return builtin_scenario("baseline")
    path, text = Path(ref), str(ref)
    if path.exists():
        return load_scenario(path)
    if text.removesuffix(".toml") in BUILTIN:
        return builtin_scenario(text.removesuffix(".toml"))
    if path.name != text:  # a path with folders: the loader says what is wrong with it
        return load_scenario(path)
    raise ScenarioError(
        f"{text!r}: no such file and no packaged scenario of that name; packaged: "
        f"{', '.join(BUILTIN)} (`cqrs-lab scenarios` describes them), or give the path of "
        "a scenario file"
    )


def packaged_descriptions() -> dict[str, str]:
    """Each packaged scenario's name and the one-line description in its ``[scenario]``."""
    out = {}
    for name in BUILTIN:
        data = tomllib.loads((_folder() / f"{name}.toml").read_text(encoding="utf-8"))
        out[name] = str(data.get("scenario", {}).get("description", ""))
    return out


def _list(args: argparse.Namespace) -> int:
    described = packaged_descriptions()
    width = max(map(len, described))
    for name, text in described.items():
        print(f"{name:<{width}}  {text}")
    print("\nrun one: cqrs-lab simulate NAME (or the path of your own scenario file)")
    return 0


def register(sub: Any) -> None:
    """Add ``cqrs-lab scenarios`` (the packaged scenarios and what each shows)."""
    p = sub.add_parser("scenarios", help="list the packaged scenarios with their description")
    p.set_defaults(run=_list)
