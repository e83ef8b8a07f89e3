"""The dead-letter store: events that kept failing, parked to be inspected and replayed."""

from __future__ import annotations

from dataclasses import dataclass

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
    """Parked events by id, in the order they were parked."""

    def __init__(self) -> None:
        self._letters: dict[str, DeadLetter] = {}
        self._next = 0
        self.replayed = 0

    def park(
        self, subscription: str, envelope: Envelope, error: str, attempts: int, now: float
    ) -> DeadLetter:
        self._next += 1
        letter = DeadLetter(f"dl-{self._next}", subscription, envelope, error, attempts, now)
        self._letters[letter.id] = letter
        return letter

    def list(self, subscription: str | None = None) -> list[DeadLetter]:
        return [
            d
            for d in self._letters.values()
            if subscription is None or d.subscription == subscription
        ]

    def get(self, letter_id: str) -> DeadLetter:
        try:
            return self._letters[letter_id]
        except KeyError:
            raise DeadLetterNotFound(
                f"no dead letter {letter_id!r}; list them with DeadLetterStore.list() "
                f"(holding {len(self._letters)})"
            ) from None

    def remove(self, letter_id: str) -> DeadLetter:
        letter = self.get(letter_id)
        del self._letters[letter_id]
        return letter

    def __len__(self) -> int:
        return len(self._letters)
