"""A consumer that keeps failing is a finding, not an attribute nobody reads.

A handler that raises on every event (a wrong signature, a bug) does not stop the engine: its
subscription retries with backoff, then parks each event in the dead-letter store and moves
on, or stays blocked behind the first one while retries are due. Either way ``pump()``
returns and the read model silently misses events. :func:`check_consumers` fails for every
subscription with parked events, or stuck behind the head on an error, naming the
projection, the error and the position.

>>> from dataclasses import dataclass
>>> from cqrs_lab.core import Domain, Engine, Event, Projection, View, install, on
>>> @dataclass(frozen=True, slots=True)
... class Rang(Event):
...     n: int
>>> class Bells(Projection):
...     name = "bells"
...     @on(Rang)
...     def _rang(self, e):  # forgot the envelope: raises TypeError on every event
...         pass
>>> engine = Engine(seed=1)
>>> _ = install(engine, Domain("bells", "", (Rang,), {}, (View("bells", Bells),)))
>>> from cqrs_lab.core import ANY
>>> _ = engine.store.append("b1", [Rang(1)], ANY)
>>> _ = engine.pump()
>>> print(check_consumers(engine).to_text())  # doctest: +ELLIPSIS
consumers: FAIL (1 checks)
  [fail] consumers healthy: bells: stuck at position 0 of 1: TypeError: ...
      - bells: stuck at position 0 of 1 (event 1, Rang), failing with TypeError: ...
"""

from __future__ import annotations

from cqrs_lab.checks.report import CheckReport, CheckResult, Status, Violation
from cqrs_lab.core import Engine, Subscription

__all__ = ["check_consumers"]

#: parked events listed as evidence per subscription (the count is always complete)
EVIDENCE = 10


def _stuck(sub: Subscription, head: int) -> Violation | None:
    if sub.last_error is None or sub.position >= head:
        return None
    nxt = sub.store.read_all(sub.position, 1)
    at = f" (event {nxt[0].position}, {nxt[0].event_type})" if nxt else ""
    return Violation(
        f"{sub.name}: stuck at position {sub.position} of {head}{at}, failing with "
        f"{sub.last_error}",
        (
            {
                "subscription": sub.name,
                "projection": sub.consumer.name,
                "position": sub.position,
                "head": head,
                "attempts": sub.attempts,
                "error": sub.last_error,
            },
        ),
    )


def _parked(sub: Subscription) -> Violation | None:
    letters = sub.dead_letters.list(sub.name)
    if not letters:
        return None
    first = letters[0]
    return Violation(
        f"{sub.name}: {len(letters)} events parked in the dead-letter store, the first at "
        f"position {first.envelope.position} ({first.envelope.event_type}): {first.error}",
        tuple(
            {
                "subscription": sub.name,
                "projection": sub.consumer.name,
                "dead_letter": letter.id,
                "position": letter.envelope.position,
                "type": letter.envelope.event_type,
                "attempts": letter.attempts,
                "error": letter.error,
            }
            for letter in letters[:EVIDENCE]
        ),
    )


def check_consumers(engine: Engine, *, quiescent: bool = True) -> CheckReport:
    """Every subscription is healthy: no parked event, and not stuck behind the head on an
    error. A parked event fails at any time; mid-run (``quiescent=False``) a consumer still
    retrying an error may recover, so it is reported as ``info``."""
    report = CheckReport("consumers")
    head = engine.store.head_position
    for sub in engine.subscriptions.values():
        parked, stuck = sub.dead_letters.list(sub.name), _stuck(sub, head)
        found = tuple(v for v in (stuck, _parked(sub)) if v is not None)
        name = f"consumers healthy: {sub.name}"
        if not found:
            report.add(CheckResult(name, "pass", "no parked event, no error pending"))
            continue
        said = []
        if stuck is not None:
            said.append(f"stuck at position {sub.position} of {head}: {sub.last_error}")
        if parked:
            said.append(f"{len(parked)} events parked in the dead-letter store: {parked[0].error}")
        status: Status = "fail" if parked or quiescent else "info"
        report.add(CheckResult(name, status, "; ".join(said), found))
    return report
