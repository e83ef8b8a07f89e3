"""Event registry and upcasters: stored form to current event class, across schema versions.

A version-1 ``Deposited`` had no currency; the class now writes version 2, and an upcaster
lifts what was stored before:

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True, slots=True)
... class Deposited(Event):
...     schema_version = 2  # the version this class writes (not a field)
...     account_id: str
...     amount: int
...     currency: str
>>> registry = EventRegistry([Deposited])
>>> registry.upcaster("Deposited", 1, lambda d: {**d, "currency": "EUR"})
>>> registry.decode(RawEvent("Deposited", 1, {"account_id": "a1", "amount": 5}))
Deposited(account_id='a1', amount=5, currency='EUR')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cqrs_lab.core.messages import Envelope, Event, RawEvent, event_to_dict
from cqrs_lab.errors import ConfigError, CqrsLabError, UnknownEventType, UpcastError

__all__ = ["EventRegistry", "Upcaster"]

Upcaster = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class EventRegistry:
    """Maps stored type names to event classes and lifts old schema versions, chained.

    An upcaster registered for ``(type, v)`` turns a version-``v`` payload into version
    ``v + 1``; a v1 event read by a v3 reader goes v1 -> v2 -> v3.
    """

    def __init__(self, event_classes: Iterable[type[Event]] = ()) -> None:
        self._classes: dict[str, type[Event]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        for cls in event_classes:
            self.register(cls)

    def register(self, cls: type[Event]) -> type[Event]:
        """Register an event class under its type name (usable as a class decorator)."""
        if not (isinstance(cls, type) and issubclass(cls, Event)):
            raise ConfigError(f"register({cls!r}): pass a subclass of cqrs_lab.core.Event")
        self._classes[cls.event_type()] = cls
        return cls

    def upcaster(self, type_name: str, from_version: int, fn: Upcaster) -> None:
        """Register ``fn`` lifting ``type_name`` payloads from ``from_version`` to the next."""
        if from_version < 1:
            raise ConfigError(f"upcaster(from_version={from_version}): versions start at 1")
        self._upcasters[(type_name, from_version)] = fn

    def knows(self, type_name: str) -> bool:
        return type_name in self._classes

    def class_for(self, type_name: str) -> type[Event]:
        try:
            return self._classes[type_name]
        except KeyError:
            raise UnknownEventType(
                f"no event class registered for stored type {type_name!r}; "
                f"register it with EventRegistry.register (known: {sorted(self._classes)})"
            ) from None

    def encode(self, event: Event) -> RawEvent:
        """The stored form of an event, at its class's current schema version."""
        return RawEvent(type(event).event_type(), type(event).schema_version, event_to_dict(event))

    def decode(self, raw: RawEvent) -> Event:
        """Lift a stored payload to the current schema version and build the event."""
        cls = self.class_for(raw.type_name)
        target = cls.schema_version
        version, data = raw.schema_version, raw.data
        if version > target:
            raise UnknownEventType(
                f"stored {raw.type_name!r} has schema version {version}, but this reader knows "
                f"only up to version {target}; deploy the reader that knows version {version}"
            )
        while version < target:
            step = self._upcasters.get((raw.type_name, version))
            if step is None:
                raise UpcastError(
                    f"no upcaster for {raw.type_name!r} from schema version {version} to "
                    f"{version + 1}; register one with EventRegistry.upcaster"
                )
            try:
                data = step(data)
            except Exception as exc:
                raise UpcastError(
                    f"upcaster for {raw.type_name!r} v{version}->v{version + 1} failed: {exc}"
                ) from exc
            version += 1
        try:
            return cls(**data)
        except TypeError as exc:
            raise UpcastError(
                f"stored {raw.type_name!r} v{raw.schema_version} does not fit {cls.__name__} "
                f"v{target} after upcasting: {exc}"
            ) from exc

    def decode_envelope(self, env: Envelope) -> Envelope:
        """The envelope with its payload decoded (unchanged if it is already an event)."""
        payload = env.payload
        if not isinstance(payload, RawEvent):
            return env
        event = self.decode(payload)
        return env._replace(payload=event, schema_version=type(event).schema_version)

    def decode_if_known(self, env: Envelope) -> Envelope:
        """``env`` decoded where this registry can; else in stored form (a type it does not
        know, or a version its upcasters cannot bring up), so the subscription that reads
        it fails on that one event and parks it as a dead letter, not the whole read."""
        if env.event_type in self._classes:
            try:
                return self.decode_envelope(env)
            except CqrsLabError:
                pass
        return env
