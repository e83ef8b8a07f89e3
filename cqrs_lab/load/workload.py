"""What the load generator sends: Zipf-skewed accounts and a weighted command mix.

The skew is the same as the simulation's ``keys = "zipf"`` (weight of the k-th account
proportional to ``1 / k**s``), so a calibrated scenario sees the same hot keys.

>>> import random
>>> keys = ZipfAccounts(5, 2.0, random.Random(0))
>>> all(k.startswith("acct-") for k in (keys() for _ in range(10)))
True
>>> CommandMix({"deposit": 1.0}, random.Random(0))()
'deposit'
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping

from cqrs_lab.errors import ConfigError

__all__ = ["COMMAND_KINDS", "DEFAULT_MIX", "CommandMix", "ZipfAccounts", "account_id", "parse_mix"]

COMMAND_KINDS = ("deposit", "withdraw", "transfer")
#: the writers' default mix: mostly deposits, some withdrawals, a few transfers
DEFAULT_MIX = {"deposit": 0.6, "withdraw": 0.3, "transfer": 0.1}


def account_id(index: int) -> str:
    """The id of the ``index``-th account (0 is the hottest under Zipf)."""
    return f"acct-{index}"


def parse_mix(text: str) -> dict[str, float]:
    """``"deposit=6,withdraw=3,transfer=1"`` -> weights; raises :class:`ConfigError`.

    >>> parse_mix("deposit=3,withdraw=1")
    {'deposit': 3.0, 'withdraw': 1.0}
    """
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, weight = part.partition("=")
        kind = kind.strip()
        if kind not in COMMAND_KINDS:
            raise ConfigError(f"mix: unknown command {kind!r}; use {', '.join(COMMAND_KINDS)}")
        try:
            w = float(weight)
        except ValueError:
            raise ConfigError(f"mix: {part!r} needs KIND=WEIGHT with a number") from None
        if not (math.isfinite(w) and w >= 0):
            raise ConfigError(f"mix: weight of {kind} must be a number >= 0, got {weight!r}")
        out[kind] = w
    if not out or sum(out.values()) <= 0:
        raise ConfigError("mix: give at least one positive weight, e.g. deposit=6,withdraw=3")
    return out


class ZipfAccounts:
    """Draws account ids with Zipf skew ``s`` over ``n`` accounts (``s = 0``: uniform)."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        if n < 2:
            raise ConfigError(f"accounts={n}: at least 2 (transfers need two accounts)")
        if not (math.isfinite(s) and s >= 0):
            raise ConfigError(f"zipf_s={s!r}: a skew >= 0 (0 is uniform)")
        weights = [1.0 / k**s for k in range(1, n + 1)]
        total = math.fsum(weights)
        acc, self.cum = 0.0, []
        for w in weights:
            acc += w / total
            self.cum.append(acc)
        self.cum[-1] = 1.0
        self.n = n
        self.rng = rng

    def index(self) -> int:
        return bisect.bisect_right(self.cum, self.rng.random())

    def __call__(self) -> str:
        return account_id(self.index())

    def other(self, index: int) -> str:
        """Another account than ``index``, uniformly (a transfer's target)."""
        return account_id((index + 1 + self.rng.randrange(self.n - 1)) % self.n)


class CommandMix:
    """Draws a command kind by weight."""

    def __init__(self, mix: Mapping[str, float], rng: random.Random) -> None:
        items = [(k, w) for k, w in mix.items() if w > 0]
        if not items or any(k not in COMMAND_KINDS for k, _ in items):
            raise ConfigError(f"mix={dict(mix)!r}: positive weights for {COMMAND_KINDS}")
        total = sum(w for _, w in items)
        acc, self.cum, self.kinds = 0.0, [], [k for k, _ in items]
        for _, w in items:
            acc += w / total
            self.cum.append(acc)
        self.cum[-1] = 1.0
        self.rng = rng

    def __call__(self) -> str:
        return self.kinds[bisect.bisect_right(self.cum, self.rng.random())]
