"""Id factories: the only way ids enter the engine, so that one seed gives one log."""

from __future__ import annotations

import itertools
import random
import uuid
from typing import Protocol

__all__ = ["IdFactory", "SequentialIds", "UuidIds"]


class IdFactory(Protocol):
    """Returns a new unique id each call."""

    def __call__(self) -> str: ...


class SequentialIds:
    """``prefix1``, ``prefix2``, ... (the default: readable and deterministic).

    >>> ids = SequentialIds("evt-")
    >>> ids(), ids()
    ('evt-1', 'evt-2')
    """

    __slots__ = ("_counter", "_prefix")

    def __init__(self, prefix: str = "", start: int = 1) -> None:
        self._prefix = prefix
        self._counter = itertools.count(start)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter)}"


class UuidIds:
    """Random version-4 UUIDs drawn from an injected seeded generator (deterministic)."""

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def __call__(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
