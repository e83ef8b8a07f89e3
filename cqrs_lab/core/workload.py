"""A domain's workload: its key space, command mix, seeded samplers and reads.

The same declaration drives the simulation (seeded samplers in simulated time), the load
generator (the same samplers, sent as JSON to ``POST /commands/{name}``) and the property
tests (``strategies``, hypothesis strategies of commands). A sampler gets a :class:`Draw`:
the seeded generator, the key chosen by the driver's key popularity (uniform or Zipf), a
sequence number unique in the run (for ids) and the workload's parameters.

>>> import random
>>> from cqrs_lab.domains.bank import domain
>>> w = domain.workload
>>> d = Draw(random.Random(1), w, keys=10, params=w.defaults())
>>> d.index, d.seq = 3, 7
>>> type(w.kind("transfer").sample(d)).__name__, d.key()
('RequestTransfer', 'acct-3')
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from cqrs_lab.core.messages import Command
from cqrs_lab.errors import DomainError

if TYPE_CHECKING:
    from cqrs_lab.core.domain import Domain

__all__ = ["CommandKind", "Draw", "Param", "ReadKind", "Workload"]


T = TypeVar("T")


def named(items: Sequence[T], key: Callable[[T], str], name: str, missing: str) -> T:
    """The item whose ``key`` is ``name``; else a :class:`DomainError` with ``missing``, whose
    ``{known}`` lists the names there are (the lookups of a domain and its workload).

    >>> named(["a", "bb"], len, 2, "no item of length 2")
    'bb'
    """
    for item in items:
        if key(item) == name:
            return item
    known = ", ".join(str(key(item)) for item in items) or "none"
    raise DomainError(missing.format(known=known))


@dataclass(frozen=True)
class Param:
    """A workload parameter: default, what it means (with its unit) and its lower bound."""

    default: int | float
    description: str
    minimum: int | float = 0

    def check(self, name: str, value: Any) -> int | float:
        """``value`` if it is a finite number >= minimum (of the default's type), else raise."""
        kind = type(self.default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and kind is int and not float(value).is_integer():
            ok = False
        if not ok or not math.isfinite(value) or value < self.minimum:
            whole = "a whole number" if kind is int else "a number"
            raise DomainError(f"{name}={value!r}: {whole} >= {self.minimum} ({self.description})")
        return kind(value)


class Draw:
    """What a sampler draws from; the driver sets ``index`` and ``seq`` before each call."""

    __slots__ = ("index", "key_of", "keys", "memo", "params", "rng", "seq")

    def __init__(
        self,
        rng: random.Random,
        workload: Workload,
        *,
        keys: int,
        params: Mapping[str, Any],
    ) -> None:
        self.rng = rng
        self.key_of = workload.key
        self.keys = keys
        self.params = dict(params)
        self.index = 0
        self.seq = 0
        #: scratch a sampler may keep per key (e.g. the last order that reserved it)
        self.memo: dict[int, Any] = {}

    def key(self) -> str:
        """The chosen key's id (``workload.key(index)``)."""
        return self.key_of(self.index)

    def other(self) -> str:
        """Another key than the chosen one, uniformly (a transfer's target)."""
        n = self.keys
        return self.key_of((self.index + 1 + int(self.rng.random() * (n - 1))) % n)

    def upto(self, high: int) -> int:
        """A whole number from 1 to ``high``, uniformly."""
        return int(self.rng.random() * high) + 1


@dataclass(frozen=True)
class CommandKind:
    """One entry of the mix: its name, the command it sends, its sampler and default weight."""

    name: str
    command: type[Command]
    sample: Callable[[Draw], Command]
    weight: float = 1.0


@dataclass(frozen=True)
class ReadKind:
    """A read of the workload: a query on the drawn key, answered by ``view``."""

    view: str
    sample: Callable[[Draw], Any]


@dataclass(frozen=True)
class Workload:
    """The domain's key space (``population`` names it: accounts, products, shows...)."""

    population: str
    key: Callable[[int], str]
    kinds: tuple[CommandKind, ...]
    setup: Callable[[Draw], Command] | None = None
    reads: tuple[ReadKind, ...] = ()
    params: Mapping[str, Param] | None = None
    default_population: int = 1000
    min_population: int = 1
    #: a function returning a hypothesis strategy of commands (its arguments: the domain's)
    strategies: Callable[..., Any] | None = None

    def validate(self, domain: Domain) -> None:
        where = f"domain {domain.name!r} workload"
        names = [k.name for k in self.kinds]
        if not names or len(set(names)) != len(names):
            raise DomainError(f"{where}: give each command kind once, got {names}")
        for k in self.kinds:
            if k.command not in domain.handlers:
                raise DomainError(
                    f"{where}: kind {k.name!r} sends {k.command.__name__}, "
                    "which has no handler in the domain"
                )
            if k.command.internal:
                raise DomainError(
                    f"{where}: kind {k.name!r} sends internal command "
                    f"{k.command.__name__}; a client may send public ones only"
                )
        for r in self.reads:
            domain.view(r.view)
        if self.population in (self.params or {}):
            raise DomainError(f"{where}: parameter {self.population!r} is the population's name")

    @property
    def mix(self) -> dict[str, float]:
        """The default mix: kind -> weight."""
        return {k.name: k.weight for k in self.kinds}

    def kind(self, name: str) -> CommandKind:
        return named(
            self.kinds, lambda k: k.name, name,
            f"no command kind {name!r} in the workload; kinds: {{known}}",
        )  # fmt: skip

    def read_for(self, view: str) -> ReadKind:
        return named(
            self.reads, lambda r: r.view, view,
            f"no read of view {view!r} in the workload; views with a read: {{known}}",
        )  # fmt: skip

    def defaults(self) -> dict[str, Any]:
        return {n: p.default for n, p in (self.params or {}).items()}

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters with ``given`` over the defaults; unknown names and bad values raise."""
        params = dict(self.params or {})
        out = self.defaults()
        for name, value in given.items():
            p = params.get(name)
            if p is None:
                raise DomainError(
                    f"unknown workload parameter {name!r}; this domain's: "
                    f"{', '.join(params) or 'none'}"
                )
            out[name] = p.check(name, value)
        return out
