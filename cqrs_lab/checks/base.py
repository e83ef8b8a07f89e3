"""Shared pieces of the invariant checks: what each semantics promises, folds, quiescence.

>>> PROMISES["at-least-once"]
Promises(no_loss=True, no_double=False)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cqrs_lab.checks.application_log import ApplicationLog
from cqrs_lab.checks.report import CheckResult
from cqrs_lab.core import Engine, Envelope, ManualClock, Projection, RawEvent, Subscription
from cqrs_lab.core.arguments import check_bool, check_whole
from cqrs_lab.errors import ConfigError

__all__ = [
    "PROMISES",
    "Promises",
    "decode",
    "env_dict",
    "fold",
    "given",
    "handled",
    "promises_of",
    "quiesce",
    "read_models",
    "unverifiable",
]


@dataclass(frozen=True, slots=True)
class Promises:
    """What a delivery semantics promises about one subscription."""

    no_loss: bool
    no_double: bool


PROMISES: dict[str, Promises] = {
    "at-most-once": Promises(no_loss=False, no_double=True),
    "at-least-once": Promises(no_loss=True, no_double=False),
    "effectively-once": Promises(no_loss=True, no_double=True),
}


def promises_of(sub: Subscription) -> Promises:
    return PROMISES.get(sub.policy.name, Promises(no_loss=False, no_double=False))


def read_models(engine: Engine) -> dict[str, list[Subscription]]:
    """Projection name -> the subscriptions feeding it (several for a partitioned group)."""
    out: dict[str, list[Subscription]] = {}
    for sub in engine.subscriptions.values():
        out.setdefault(sub.consumer.name, []).append(sub)
    return out


def quiesce(engine: Engine, max_rounds: int = 100, *, stop_faults: bool = False) -> None:
    """Restart crashed subscriptions and run until idle, until nothing is down or due.

    On a :class:`~cqrs_lab.core.ManualClock` the clock is advanced to each due retry or held
    delivery (``run_until_idle``). Any other clock only its driver moves (a finished
    simulation's SimPy clock): the subscriptions are pumped until none makes progress.
    ``stop_faults`` first removes the injected faults (transport drops, duplicates, reorders,
    crash points), as a run that is over has no more of them: use it on a simulation's engine
    before checking it.

    >>> from cqrs_lab.core import Engine, ManualClock
    >>> from cqrs_lab.domains import bank
    >>> engine = Engine(clock=ManualClock(), seed=0)
    >>> _ = bank.install(engine)
    >>> _ = engine.dispatch(bank.OpenAccount("a", "ann", 5))
    >>> quiesce(engine, stop_faults=True)
    >>> engine.ask(bank.GetBalance("a")).value
    5
    """
    given(engine, "quiesce")
    if type(max_rounds) is not int or max_rounds < 1:
        check_whole(max_rounds, "max_rounds", "a whole number >= 1", where="quiesce", low=1)
    stop_faults = check_bool(stop_faults, "stop_faults", "True or False", where="quiesce")
    if stop_faults:
        engine.set_faults(None)
    manual = isinstance(engine.clock, ManualClock)
    subs = engine.subscriptions.values()
    for _ in range(max_rounds):
        for sub in subs:
            sub.restart()
        moved = engine.run_until_idle() if manual else engine.pump()
        if not any(s.crashed for s in subs) and (manual or moved == 0):
            return


_NO_LOG = object()


def given(engine: object, where: str, log: object = _NO_LOG) -> None:
    """Refuse, naming the argument, an ``engine`` that is not an :class:`Engine` (and a
    ``log`` that is not an :class:`ApplicationLog`, when one is passed)."""
    if not isinstance(engine, Engine):
        raise ConfigError(f"{where}(engine={engine!r}): pass the Engine to check")
    if log is not _NO_LOG and not isinstance(log, ApplicationLog):
        raise ConfigError(
            f"{where}(log={log!r}): pass the ApplicationLog given to the engine as its "
            "recorder, Engine(recorder=log)"
        )


def decode(engine: Engine, env: Envelope) -> Any:
    payload = env.payload
    return engine.store.registry.decode(payload) if type(payload) is RawEvent else payload


def fold(engine: Engine, consumer: Projection, envelopes: Iterable[Envelope]) -> Projection:
    """A fresh copy of ``consumer`` with ``envelopes`` applied in order, once each."""
    twin = type(consumer)()
    for env in envelopes:
        payload = decode(engine, env)
        handler = twin.handlers.get(type(payload))
        if handler is not None:
            handler(payload, env)
    return twin


def env_dict(env: Envelope, **extra: Any) -> dict[str, Any]:
    return {
        "position": env.position, "stream": env.stream_id, "version": env.stream_version,
        "type": env.event_type, **extra,
    }  # fmt: skip


def handled(engine: Engine, consumer: Projection) -> list[Envelope]:
    return [e for e in engine.store.read_all() if consumer.handles(type(decode(engine, e)))]


def unverifiable(title: str, subs: list[Subscription], log: ApplicationLog) -> CheckResult | None:
    """An ``info`` result when a shadow rebuild fed a read model outside the log, else None."""
    hidden = [s.name for s in subs if not log.verifiable(s.name)]
    if not hidden:
        return None
    return CheckResult(
        title, "info",
        f"not verifiable: a shadow rebuild of {', '.join(hidden)} applied events the "
        f"application log did not see (an in-place rebuild would be recorded)",
    )  # fmt: skip
