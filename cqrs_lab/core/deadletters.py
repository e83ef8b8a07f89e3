"""The dead-letter store: events that kept failing, parked to be inspected and replayed."""

from __future__ import annotations

from dataclasses import dataclass, replace

from cqrs_lab.core.messages import Envelope
from cqrs_lab.errors import DeadLetterNotFound

__all__ = ["DeadLetter", "DeadLetterStore"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One parked event: which subscription, which event, why, after how many attempts."""

    id: str
    subscription: str
    envelope: Envelope
    error: str
    attempts: int
    parked_at: float


class DeadLetterStore:
    """Parked events by id, in the order they were parked: one letter per subscription and
    event. An event delivered again and failing again (a crash rolled back the unit that
    parked it, or at-least-once redelivered it) updates its letter: two letters would be
    two replays, and the event's effect applied twice. An event delivered again and applied
    voids its letter (:meth:`void`): replayed, the letter would apply it a second time."""

    def __init__(self) -> None:
        self._letters: dict[str, DeadLetter] = {}
        #: (subscription, position) -> letter id: the events parked (read it, never write it)
        self.parked: dict[tuple[str, int], str] = {}
        self._next = 0
        self.replayed = 0

    def park(
        self, subscription: str, envelope: Envelope, error: str, attempts: int, now: float
    ) -> DeadLetter:
        key = (subscription, envelope.position)
        known = self.parked.get(key)
        if known is not None:  # parked before: the same letter, its latest failure
            letter = replace(self._letters[known], error=error, attempts=attempts, parked_at=now)
            self._letters[known] = letter
            return letter
        self._next += 1
        letter = DeadLetter(f"dl-{self._next}", subscription, envelope, error, attempts, now)
        self._letters[letter.id] = letter
        self.parked[key] = letter.id
        return letter

    def void(self, subscription: str, position: int) -> None:
        """The event at ``position`` was applied by ``subscription`` after all (delivered
        again once a crash rolled back the unit that parked it, or redelivered): its letter,
        if any, goes."""
        letter_id = self.parked.get((subscription, position))
        if letter_id is not None:
            self.remove(letter_id)

    def discard(self, subscription: str) -> int:
        """Drop ``subscription``'s letters (a rebuild deals with their events again, and
        parks anew what still fails); returns how many."""
        gone = [d.id for d in self._letters.values() if d.subscription == subscription]
        for letter_id in gone:
            self.remove(letter_id)
        return len(gone)

    def rename(self, subscription: str, to: str) -> None:
        """``subscription``'s letters become ``to``'s (a shadow copy taking the live one's
        place); an event ``to`` has parked already keeps that letter."""
        for letter in [d for d in self._letters.values() if d.subscription == subscription]:
            self.remove(letter.id)
            if (to, letter.envelope.position) in self.parked:
                continue
            moved = replace(letter, subscription=to)
            self._letters[moved.id] = moved
            self.parked[(to, moved.envelope.position)] = moved.id

    def list(self, subscription: str | None = None) -> list[DeadLetter]:
        return [
            d
            for d in self._letters.values()
            if subscription is None or d.subscription == subscription
        ]

    def get(self, letter_id: str) -> DeadLetter:
        try:
            return self._letters[letter_id]
        except (KeyError, TypeError):  # TypeError: not even an id (a list, a dict)
            raise DeadLetterNotFound(
                f"no dead letter {letter_id!r}; list them with DeadLetterStore.list() "
                f"(holding {len(self._letters)})"
            ) from None

    def remove(self, letter_id: str) -> DeadLetter:
        letter = self.get(letter_id)
        del self._letters[letter_id]
        self.parked.pop((letter.subscription, letter.envelope.position), None)
        return letter

    def __len__(self) -> int:
        return len(self._letters)
