"""``cqrs-lab scenarios``: the scenario files shipped in the package, listed with the
standard library alone (``importlib.resources`` and ``tomllib``), so the list works on the
core-only install too; running one needs ``cqrs_lab[sim]``
(:func:`cqrs_lab.sim.resolve_scenario`).

>>> "baseline" in PACKAGED and "crashes_effectively_once" in PACKAGED
True
>>> descriptions()["baseline"]  # doctest: +ELLIPSIS
'Steady Poisson load; ...'
"""

from __future__ import annotations

import argparse
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

__all__ = ["PACKAGED", "descriptions", "folder", "register"]


def folder() -> Traversable:
    """The package's folder of scenario files (``cqrs_lab/scenarios``)."""
    return resources.files("cqrs_lab") / "scenarios"


#: the packaged scenarios' names, sorted (``baseline``, ``crashes_effectively_once``, ...)
PACKAGED: tuple[str, ...] = tuple(
    sorted(f.name.removesuffix(".toml") for f in folder().iterdir() if f.name.endswith(".toml"))
)


def descriptions() -> dict[str, str]:
    """Each packaged scenario's name and the one-line description in its ``[scenario]``."""
    out = {}
    for name in PACKAGED:
        data = tomllib.loads((folder() / f"{name}.toml").read_text(encoding="utf-8"))
        out[name] = str(data.get("scenario", {}).get("description", ""))
    return out


def _list(args: argparse.Namespace) -> int:
    described = descriptions()
    width = max(map(len, described))
    for name, text in described.items():
        print(f"{name:<{width}}  {text}")
    print(
        "\nrun one: cqrs-lab simulate NAME (or the path of your own scenario file; "
        "simulating needs cqrs_lab[sim])"
    )
    return 0


def register(sub: Any) -> None:
    """Add ``cqrs-lab scenarios`` (the packaged scenarios and what each shows)."""
    p = sub.add_parser("scenarios", help="list the packaged scenarios with their description")
    p.set_defaults(run=_list)
