"""What the load generator sends: a domain's command mix over Zipf-skewed keys.

The kinds, their samplers and the key space come from the domain's
:class:`~cqrs_lab.core.Workload`; this module only chooses *which* kind and *which* key.
The skew is the same as the simulation's ``keys = "zipf"`` (weight of the k-th key
proportional to ``1 / k**s``), so a calibrated scenario sees the same hot keys.

>>> import random
>>> keys = ZipfKeys(5, 2.0, random.Random(0))
>>> all(0 <= keys.index() < 5 for _ in range(10))
True
>>> CommandMix({"reserve": 1.0}, random.Random(0))()
'reserve'
>>> parse_mix("reserve=3,ship=1", ("reserve", "ship", "restock"))
{'reserve': 3.0, 'ship': 1.0}
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping, Sequence

from cqrs_lab.errors import ConfigError

__all__ = ["CommandMix", "ZipfKeys", "format_mix", "parse_mix"]


def parse_mix(text: str, kinds: Sequence[str]) -> dict[str, float]:
    """``"deposit=6,withdraw=3"`` -> weights of the domain's ``kinds``; raises ConfigError.

    >>> try:
    ...     parse_mix("pay=1", ("deposit", "withdraw"))
    ... except ConfigError as exc:
    ...     print(exc)
    --mix: unknown command kind 'pay'; this domain's kinds: deposit, withdraw
    """
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, weight = part.partition("=")
        kind = kind.strip()
        if kind not in kinds:
            raise ConfigError(
                f"--mix: unknown command kind {kind!r}; this domain's kinds: {', '.join(kinds)}"
            )
        try:
            w = float(weight)
        except ValueError:
            raise ConfigError(f"--mix: {part!r} needs KIND=WEIGHT with a number") from None
        if not (math.isfinite(w) and w >= 0):
            raise ConfigError(f"--mix: weight of {kind} must be a number >= 0, got {weight!r}")
        out[kind] = w
    if not out or sum(out.values()) <= 0:
        example = ",".join(f"{k}=1" for k in kinds[:2])
        raise ConfigError(f"--mix: give at least one positive weight, e.g. {example}")
    return out


def format_mix(mix: Mapping[str, float]) -> str:
    """The ``--mix`` text of ``mix`` (the inverse of :func:`parse_mix`).

    >>> format_mix({"deposit": 0.6, "withdraw": 0.4})
    'deposit=0.6,withdraw=0.4'
    """
    return ",".join(f"{k}={w:g}" for k, w in mix.items())


class ZipfKeys:
    """Draws key indices with Zipf skew ``s`` over ``n`` keys (``s = 0``: uniform); index 0
    is the hottest. The domain's ``workload.key(index)`` names the key."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        if n < 1:
            raise ConfigError(f"keys={n}: at least 1")
        if not (math.isfinite(s) and s >= 0):
            raise ConfigError(f"--zipf-s {s!r}: a skew >= 0 (0 is uniform)")
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


class CommandMix:
    """Draws a command kind by weight (kinds with weight 0 are never drawn)."""

    def __init__(self, mix: Mapping[str, float], rng: random.Random) -> None:
        items = [(k, w) for k, w in mix.items() if w > 0]
        if not items:
            raise ConfigError(f"mix={dict(mix)!r}: give at least one positive weight")
        total = sum(w for _, w in items)
        acc, self.cum, self.kinds = 0.0, [], [k for k, _ in items]
        for _, w in items:
            acc += w / total
            self.cum.append(acc)
        self.cum[-1] = 1.0
        self.rng = rng

    def __call__(self) -> str:
        return self.kinds[bisect.bisect_right(self.cum, self.rng.random())]
