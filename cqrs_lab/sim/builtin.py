"""The scenarios shipped in the package (``cqrs_lab/scenarios/*.toml``), and the one place
that turns what a user typed into a scenario: a file path or a packaged scenario's name.

``cqrs-lab simulate`` with no scenario runs the packaged ``baseline``, so ``make demo`` needs
nothing outside the package; ``cqrs-lab scenarios`` lists them
(:mod:`cqrs_lab.packaged_scenarios`, which needs the standard library alone).

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

from importlib import resources
from pathlib import Path

from cqrs_lab.errors import ScenarioError
from cqrs_lab.packaged_scenarios import PACKAGED, descriptions, folder
from cqrs_lab.sim.scenario import Scenario
from cqrs_lab.sim.scenario_load import load_scenario

__all__ = [
    "BUILTIN",
    "builtin_scenario",
    "packaged_descriptions",
    "resolve_scenario",
]


#: the packaged scenarios' names, sorted (``baseline``, ``crashes_effectively_once``, ...)
BUILTIN: tuple[str, ...] = PACKAGED
#: each packaged scenario's name and its one-line description
packaged_descriptions = descriptions


def builtin_scenario(name: str = "baseline") -> Scenario:
    """A scenario shipped inside the package, by name (:data:`BUILTIN`)."""
    if name not in BUILTIN:
        raise ScenarioError(
            f"{name!r}: no packaged scenario of that name; packaged: {', '.join(BUILTIN)} "
            "(or pass the path of a scenario file)"
        )
    with resources.as_file(folder() / f"{name}.toml") as path:
        return load_scenario(path)


def resolve_scenario(ref: str | Path | None) -> Scenario:
    """The scenario a user named: the path of a file, or a packaged scenario's name
    (``baseline``, with or without ``.toml``); None is the packaged baseline. An existing
    file wins over a packaged name, a folder does not (``--out baseline`` makes one)."""
    if ref is None:
        return builtin_scenario("baseline")
    path, text = Path(ref), str(ref)
    if path.exists() and not (path.is_dir() and text.removesuffix(".toml") in BUILTIN):
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
