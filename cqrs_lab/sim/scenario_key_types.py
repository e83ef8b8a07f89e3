"""The kinds of a scenario file's keys and tables (:class:`Key`, :class:`Table`), the units
their tables share, and how a default reads in the reference. The tables themselves are in
:mod:`cqrs_lab.sim.scenario_keys_run`, ``_views``, ``_server`` and ``_faults``, gathered in
:mod:`cqrs_lab.sim.scenario_keys`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cqrs_lab.sim.distributions import Dist

__all__ = [
    "COMMANDS",
    "EVENTS",
    "PER_SECOND",
    "PROCESSES",
    "SECONDS",
    "Key",
    "Table",
    "describe_default",
    "dist_text",
]

PROCESSES = ("poisson", "constant", "onoff", "diurnal", "step", "spike", "trace")
#: the units the tables' keys share
SECONDS, EVENTS, COMMANDS, PER_SECOND = "seconds", "events", "commands", "per second"


@dataclass(frozen=True)
class Key:
    """One key: ``kind`` is number, whole, text, choice, time (seconds or a distribution),
    table or list; ``default`` None means absent (off). ``domain`` says what a domain
    supplies (its allowed values), ``doc`` what the key means."""

    name: str
    kind: str
    default: Any = None
    unit: str = ""
    doc: str = ""
    lo: float = 0.0
    hi: float = math.inf
    open_lo: bool = False
    choices: tuple[str, ...] = ()
    domain: str = ""

    @property
    def allowed(self) -> str:
        """The allowed values, in words."""
        if self.domain:
            return self.domain
        if self.choices:
            return "one of " + ", ".join(f"`{c}`" for c in self.choices)
        if self.kind in ("number", "whole"):
            lo = f"> {self.lo:g}" if self.open_lo else f">= {self.lo:g}"
            return lo + (f" and <= {self.hi:g}" if self.hi != math.inf else "")
        if self.kind == "time":
            return "seconds >= 0, or a distribution table"
        return {"text": "a string", "table": "a table", "list": "a list"}.get(self.kind, "")


@dataclass(frozen=True)
class Table:
    """A TOML table (``[path]``, or ``[[path]]`` when ``array``) and its keys."""

    path: str
    doc: str
    keys: tuple[Key, ...]
    array: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    def key(self, name: str) -> Key:
        return next(k for k in self.keys if k.name == name)


def dist_text(d: Dist) -> str:
    """A distribution as the reference prints a default: ``exponential mean 0.001 s``."""
    return f"{d.kind} mean {d.mean:g} s" + (
        f" cv {d.cv:g}" if d.kind in ("lognormal", "gamma") else ""
    )


def describe_default(key: Key) -> str:
    """The default as the reference prints it."""
    d = key.default
    if d is None or d == ():
        return "absent"
    if isinstance(d, Dist):
        return dist_text(d)
    if isinstance(d, str) and d.startswith("<"):
        return d.strip("<>")
    return f"`{d!r}`" if isinstance(d, str) else f"`{d:g}`" if isinstance(d, float) else f"`{d}`"
