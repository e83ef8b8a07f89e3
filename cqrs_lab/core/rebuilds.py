"""Rebuilds, dead-letter replay and statistics of a subscription (a part of its class).

An in-place rebuild empties the read model and replays the log from position 0; a shadow
rebuild catches a second copy up beside the live one and swaps it in when caught up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cqrs_lab.core.deadletters import DeadLetter
from cqrs_lab.core.messages import RawEvent
from cqrs_lab.core.projections import Projection, Saga
from cqrs_lab.core.readmodel import rollback
from cqrs_lab.errors import ConfigError

if TYPE_CHECKING:
    from cqrs_lab.core.subscription import Subscription

__all__ = ["advance_shadow", "rebuild", "replay_dead_letter", "stats"]


def rebuild(sub: Subscription, *, shadow: bool = False) -> None:
    """Replay the projection from position 0.

    In place: the read model empties at once and refills (readers see partial data).
    Shadow: a second copy catches up beside the live one, which keeps serving, and takes
    its place in one step when it has caught up.

    A saga rebuilt either way replays its facts without sending again the steps it took
    before: everything at or below the position it had reached is known to have been
    handled, and the effects of the steps taken then are in the log (see
    ``Saga.replay_until``), so a rebuild never counts on the bus's bounded records. (A
    partition's position says nothing of the other partitions feeding the same saga, so a
    partition rebuilt alone sets no bound.)
    """
    reached = sub.position if sub.partition is None else 0
    name = f"{sub.name}~rebuild" if shadow else sub.name  # the copy that deals with it all
    if not isinstance(sub.consumer, Saga):
        # a read model's parked events are applied again: what still fails is parked anew
        # (a letter kept would be replayed on top of the rebuild's own application). A
        # saga's stay: it replays them without sending, and their steps were never taken
        sub.dead_letters.discard(name)
    sub.rebuilds += 1
    sub.rebuilding_since = sub.clock.now()
    if shadow:
        sub.checkpoints.reset(name)
        sub.shadow = type(sub)(
            name, sub.store, sub.consumer.fresh(), sub.policy,
            clock=sub.clock, rng=sub.rng, batch_size=sub.batch_size,
            retry=sub.retry, dead_letters=sub.dead_letters, checkpoints=sub.checkpoints,
        )  # fmt: skip
        _replay_without_sending(sub.shadow.consumer, sub.consumer, reached)
        return
    sub.inbox.clear()
    sub.inbox_mixed = False
    if sub.transport is not None:
        sub.transport.clear()
    sub.undo.clear()
    sub.unit.clear()
    sub.retry_at, sub.attempts = None, 0
    sub.consumer.reset()
    _replay_without_sending(sub.consumer, sub.consumer, reached)
    store, key = sub.tracking_location
    store.reset(key)
    sub.reset_progress()
    sub.lost = 0  # replayed from position 0: what was lost before is applied now


def _replay_without_sending(copy: Projection, live: Projection, reached: int) -> None:
    """A rebuilt saga sends nothing for events up to ``reached`` (or an earlier bound)."""
    if isinstance(copy, Saga) and isinstance(live, Saga):
        copy.replay_until = max(live.replay_until, reached)


def advance_shadow(sub: Subscription) -> int:
    """Step the shadow copy; swap it in once caught up. Returns the shadow's progress."""
    shadow = sub.shadow
    assert shadow is not None
    moved = shadow.step() + shadow.polled
    if shadow.inbox or shadow.position < sub.position or shadow.crashed:
        return moved
    sub.consumer.take_over(shadow.consumer)
    if not isinstance(sub.consumer, Saga):  # the live copy's: applied again (rebuild())
        sub.dead_letters.discard(sub.name)
    sub.dead_letters.rename(shadow.name, sub.name)
    sub.inbox.clear()
    sub.inbox_mixed = False
    sub.undo.clear()
    sub.unit.clear()
    sub.reset_progress()
    sub.record.restore(shadow.record)
    sub.durable = sub.record.copy()
    store, key = sub.tracking_location
    store.commit(key, sub.durable)
    sub.checkpoints.reset(shadow.name)
    sub.fetched = sub.record.watermark
    sub.lost = shadow.lost  # the copy that took over saw the whole log
    sub.shadow = None
    sub.rebuilding_since = None
    return moved + 1


def replay_dead_letter(sub: Subscription, letter_id: str) -> DeadLetter:
    """Apply a parked event again; on success it leaves the store (else it stays)."""
    letter = sub.dead_letters.get(letter_id)
    if letter.subscription != sub.name:
        raise ConfigError(
            f"dead letter {letter_id!r} was parked by {letter.subscription!r}, not "
            f"{sub.name!r}: replay it on its own subscription "
            f"(engine.subscription({letter.subscription!r}))"
        )
    env = letter.envelope
    if type(env.payload) is RawEvent:
        env = sub.store.registry.decode_envelope(env)
    payload = env.payload
    consumer = sub.consumer
    handler = consumer.handlers.get(type(payload))
    if consumer.active_writer is not sub:  # a partition's shared tables: log to its own undo
        sub._bind_tables()
    savepoint = len(sub.undo)
    # a parked event's step was never taken: a saga sends it even below its replay bound
    bound = consumer.replay_until if isinstance(consumer, Saga) else 0
    try:
        if isinstance(consumer, Saga):
            consumer.replay_until = 0
        if handler is not None:
            handler(payload, env)
    except Exception:
        rollback(sub.undo, savepoint)
        raise
    finally:
        if isinstance(consumer, Saga):
            consumer.replay_until = bound
    sub.undo.clear()
    sub.dead_letters.remove(letter_id)
    sub.dead_letters.replayed += 1
    sub.applied += 1
    if sub.recorder is not None:
        sub.recorder.applied(sub.name, env, sub.clock.now())
    return letter


def stats(sub: Subscription) -> dict[str, Any]:
    """Counters and positions, as plain data."""
    return {
        "name": sub.name,
        "delivery": sub.policy.name,
        "position": sub.position,
        "checkpoint": sub.checkpoint,
        "head": sub.store.head_position,
        "backlog": sub.backlog(),
        "lag_seconds": sub.lag_seconds(),
        "lag_p99_seconds": sub.lag_histogram.quantile(0.99),
        "delivered": sub.delivered,
        "applied": sub.applied,
        "ignored": sub.ignored,
        "duplicates_skipped": sub.duplicates_skipped,
        "duplicates_applied": sub.duplicates_applied,
        "dropped": sub.transport.dropped if sub.transport else 0,
        "retries": sub.retries,
        "dead_lettered": sub.dead_lettered,
        "dead_letters": len(sub.dead_letters.list(sub.name)),
        "crashes": sub.crashes,
        "lost": sub.lost,
        "crashed": sub.crashed,
        "open_instances": _open_instances(sub.consumer),
        "rebuilding": sub.rebuilding,
    }


def _open_instances(consumer: Projection) -> int:
    count = getattr(consumer, "open_instances", None)
    return int(count()) if callable(count) else 0
