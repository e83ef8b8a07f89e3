"""A subscription feeds one projection or saga from the log, with its delivery semantics.

It is passive: a driver calls :meth:`Subscription.poll` (fetch into the inbox),
:meth:`Subscription.process` (handle what is in the inbox), or :meth:`Subscription.step`
(both) and asks :meth:`Subscription.next_due` when a retry or a held delivery comes due.
The loop here is shared by every semantics; what differs between them is the
:class:`~cqrs_lab.core.delivery.DeliveryPolicy` strategy's.
"""

from __future__ import annotations

import random
from collections import deque

from cqrs_lab.core import rebuilds as _rebuilds
from cqrs_lab.core.arguments import check_whole
from cqrs_lab.core.clock import Clock
from cqrs_lab.core.deadletters import DeadLetterStore
from cqrs_lab.core.delivery import DeliveryPolicy, RetryPolicy
from cqrs_lab.core.faults import CrashPoint, FaultPlan
from cqrs_lab.core.lifecycle import SubscriptionLifecycle
from cqrs_lab.core.messages import Envelope, RawEvent
from cqrs_lab.core.metrics import Histogram
from cqrs_lab.core.projections import Projection, Saga
from cqrs_lab.core.readmodel import Progress, UndoLog, rollback
from cqrs_lab.core.recorders import RecorderFanout, SubscriptionRecorder
from cqrs_lab.core.store import EventStore
from cqrs_lab.core.tracking import InMemoryTracking, TrackingStore
from cqrs_lab.errors import ConfigError, ConsumerCrashed, StoreFailure

__all__ = ["RecorderFanout", "Subscription", "SubscriptionRecorder"]

_BEFORE, _AFTER, _CHECKPOINT = (
    CrashPoint.BEFORE_HANDLE,
    CrashPoint.AFTER_HANDLE,
    CrashPoint.AFTER_CHECKPOINT,
)


def _check_max_events(value: object, where: str) -> int:
    return check_whole(
        value, "max_events", "a whole number >= 0 (0: poll only), or None for all", where=where
    )


class Subscription(SubscriptionLifecycle):
    """Delivers the log to ``consumer`` under ``policy``; see :mod:`cqrs_lab.core.delivery`.

    ``checkpoints`` is the tracking store of the semantics that keep their record outside the
    read model (at-most-once, at-least-once); the engine passes its own. A new subscription
    starts from position 0 and forgets what an earlier one under its name committed, unless
    ``resume=True`` (a read model that outlives its consumer, such as a durable one).
    """

    def __init__(
        self,
        name: str,
        store: EventStore,
        consumer: Projection,
        policy: DeliveryPolicy,
        *,
        clock: Clock,
        rng: random.Random,
        batch_size: int = 256,
        checkpoint_every: int | None = None,
        retry: RetryPolicy | None = None,
        dead_letters: DeadLetterStore | None = None,
        faults: FaultPlan | None = None,
        recorder: SubscriptionRecorder | None = None,
        partition: tuple[int, int] | None = None,
        auto_commit: bool = True,
        checkpoints: TrackingStore | None = None,
        resume: bool = False,
    ) -> None:
        if partition is not None and not 0 <= partition[0] < partition[1]:
            raise ConfigError(f"partition={partition}: pass (index, count) with 0 <= index < count")
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: pass a whole number >= 1")
        if checkpoint_every is not None and checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every={checkpoint_every}: pass >= 1, or None")
        self.name = name
        self.store = store
        self.consumer = consumer
        self.policy = policy
        self.clock = clock
        self.rng = rng
        self.batch_size = batch_size
        self.checkpoint_every = checkpoint_every
        self.retry = retry if retry is not None else RetryPolicy()
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetterStore()
        self.recorder = recorder
        self.partition = partition
        self.auto_commit = auto_commit
        self.checkpoints: TrackingStore = (
            checkpoints if checkpoints is not None else InMemoryTracking()
        )
        self._owner: dict[str, bool] = {}  # stream id -> belongs to this partition
        # a store that indexes partitions (read_partition) spares a partition the full scan
        self._read_partition = (
            getattr(store, "read_partition", None) if partition is not None else None
        )
        self.inbox: deque[Envelope] = deque()
        #: the inbox may hold deliveries out of log order or twice (a transport was involved)
        self.inbox_mixed = False
        self.polled = 0
        self.crashed = False
        self.retry_at: float | None = None
        self.attempts = 0
        self.last_error: str | None = None
        self.undo: UndoLog = []
        self.unit: list[Envelope] = []  # applied since the last commit
        #: the copy a shadow rebuild is catching up (None: no shadow rebuild running)
        self.shadow: Subscription | None = None
        self.rebuilds = 0
        self.rebuilding_since: float | None = None
        #: lag in seconds (now - recorded_at) of the last event each processing call applied
        self.lag_histogram = Histogram()
        # counters
        self.delivered = self.applied = self.ignored = 0
        self.duplicates_skipped = self.duplicates_applied = 0
        self.retries = self.dead_lettered = self.crashes = self.lost = 0
        if not resume:  # a new consumer of an in-memory read model starts from position 0
            tracking, key = policy.tracking(self)
            tracking.reset(key)
        self.reset_progress()
        #: whether a faulty transport was ever on: deliveries may have overtaken each other
        #: (a check of a finished run, its faults since stopped, must still know)
        self.transport_faults_seen = False
        self.set_faults(faults)

    # -- state -----------------------------------------------------------------------------
    def _bind_tables(self) -> None:
        """Point the consumer's tables at this subscription's undo log."""
        consumer = self.consumer
        for t in consumer.tables:
            t._undo = self.undo
        consumer.active_writer = self

    def reset_progress(self) -> None:
        self._bind_tables()
        self.tracking_location = self.policy.tracking(self)
        store, key = self.tracking_location
        #: the last committed record: where this consumer resumes after a crash
        self.durable: Progress = store.load(key)
        #: positions dealt with: applied, ignored, parked or declared lost
        self.record = self.durable.copy()
        self.ledger = Progress()  # positions applied at least once (at-least-once counts)
        self.fetched = self.durable.watermark

    @property
    def position(self) -> int:
        """Every event up to here has been dealt with (applied, ignored, parked or lost)."""
        return self.record.watermark

    @property
    def checkpoint(self) -> int:
        """Where this consumer resumes after a crash."""
        return self.durable.watermark

    def backlog(self) -> int:
        return self.store.head_position - self.position

    def lag_seconds(self) -> float:
        """Age of the oldest event not yet dealt with (0 when caught up)."""
        nxt = self.store.read_all(self.position, 1)
        return max(0.0, self.clock.now() - nxt[0].recorded_at) if nxt else 0.0

    def next_due(self) -> float | None:
        """When a blocked retry or a held delivery comes due (None: nothing scheduled)."""
        due = [t for t in (self.retry_at, self.transport and self.transport.next_due()) if t]
        if self.shadow is not None and (s := self.shadow.next_due()) is not None:
            due.append(s)
        return min(due) if due else None

    @property
    def idle(self) -> bool:
        """Nothing to do now or later until new events are appended."""
        return (
            not self.inbox
            and self.fetched >= self.store.head_position
            and self.next_due() is None
            and self.shadow is None
        )

    # -- driving -----------------------------------------------------------------------------
    def process(self, max_events: int | None = None) -> int:
        """Handle up to ``max_events`` from the inbox (None: all of it; 0: none); returns
        how many were dealt with."""
        if max_events is not None and (type(max_events) is not int or max_events < 0):
            max_events = _check_max_events(max_events, "process")
        return self._process_due(max_events)

    def _process_due(self, max_events: int | None) -> int:
        """:meth:`process` with ``max_events`` checked (:meth:`step` checks it itself)."""
        if self.crashed:
            return 0
        if self.retry_at is not None:
            if self.clock.now() < self.retry_at:
                return 0
            self.retry_at = None
        try:
            done = self._process(max_events)
        except ConsumerCrashed as crash:
            self._crash(crash)
            return 0
        return done

    def step(self, max_events: int | None = None) -> int:
        """``poll()`` then ``process()``; returns the events dealt with (applied, skipped,
        parked). Also advances a shadow rebuild. ``max_events``: as :meth:`process` takes
        it (0: poll only)."""
        if max_events is not None and (type(max_events) is not int or max_events < 0):
            max_events = _check_max_events(max_events, "step")
        self.polled = self.poll()
        done = self._process_due(max_events)
        if self.shadow is not None:
            self.polled += _rebuilds.advance_shadow(self)
        return done

    def pump(self, max_steps: int = 1_000_000) -> int:
        """Step until nothing more can be done now, ``max_steps`` times at most (a whole
        number >= 1); returns the events dealt with."""
        if type(max_steps) is not int or max_steps < 1:
            max_steps = check_whole(
                max_steps, "max_steps", "a whole number >= 1, the most steps", where="pump", low=1
            )
        total = 0
        for _ in range(max_steps):
            done = self.step()
            total += done
            if done == 0 and self.polled == 0:
                break
        return total

    def _process(self, max_events: int | None) -> int:
        inbox = self.inbox
        if not inbox:
            return 0
        consumer, record, policy = self.consumer, self.record, self.policy
        if consumer.active_writer is not self:
            self._bind_tables()
        handlers, undo, unit = consumer.handlers, self.undo, self.unit
        seen, note = policy.duplicate_filter(self), policy.applied_hook(self)
        hook, rec = self.crash_hook, self.recorder
        name, clock_now = self.name, self.clock.now  # looked up once per batch, used per event
        every = self.checkpoint_every
        keep_unit = rec is not None or every is not None
        letters = self.dead_letters
        parked = letters.parked  # an event applied after all voids its letter, except where
        # a saga replays it without taking its steps (at or below its bounds): kept to replay
        kept_to = consumer.replays_through if isinstance(consumer, Saga) else 0
        limit = len(inbox) if max_events is None else min(max_events, len(inbox))
        done = applied = ignored = 0
        last: Envelope | None = None
        try:
            while done < limit:
                env = inbox.popleft()
                done += 1
                p = env.position
                if seen is not None and seen(p):
                    self.skip_duplicate(env, self.clock.now())
                    continue
                if hook is not None:
                    try:
                        hook.check(_BEFORE, p)
                    except ConsumerCrashed:
                        inbox.appendleft(env)  # still in flight when the consumer died
                        raise
                savepoint = len(undo)
                payload = env.payload
                handler = handlers.get(type(payload))
                try:
                    if handler is None and type(payload) is RawEvent:
                        env = self.store.registry.decode_envelope(env)  # handlers see events
                        payload = env.payload
                        handler = handlers.get(type(payload))
                    if handler is not None:
                        handler(payload, env)
                except ConsumerCrashed:
                    inbox.appendleft(env)
                    raise
                except StoreFailure:  # the store, not the handler: the event stays in flight
                    rollback(undo, savepoint)
                    inbox.appendleft(env)
                    raise
                except Exception as exc:
                    rollback(undo, savepoint)
                    inbox.appendleft(env)
                    if not self._failed(env, exc):
                        done -= 1
                        break  # blocked until retry_at
                    continue
                if self.attempts:
                    self.attempts = 0
                if p == record.watermark + 1 and not record.above:
                    record.watermark = p  # the contiguous fast path of Progress.add
                else:
                    record.add(p)
                if handler is None:
                    ignored += 1
                else:
                    applied += 1
                    last = env
                    if keep_unit:
                        unit.append(env)
                    if note is not None:
                        note(p)
                    if rec is not None:
                        rec.applied(name, env, clock_now())
                    if parked and p > kept_to and (name, p) in parked:
                        letters.void(name, p)
                if hook is not None:
                    hook.check(_AFTER, p)
                if every is not None and len(unit) >= every:
                    self.commit()
                    if self.crashed:  # a crash planned after the checkpoint fired in commit()
                        break
        finally:
            if last is not None:
                self.lag_histogram.observe(self.clock.now() - last.recorded_at)
            self.applied += applied
            self.ignored += ignored
        if not inbox:
            self.inbox_mixed = self.transport is not None
        if self.partition is not None:
            self._skip_foreign()
        if not self.crashed:
            policy.end_of_batch(self)
        return done

    def _failed(self, env: Envelope, exc: Exception) -> bool:
        """Schedule a retry (False: blocked) or park the event (True: move on)."""
        self.attempts += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        now = self.clock.now()
        if self.attempts < self.retry.max_attempts:
            self.retries += 1
            self.retry_at = now + self.retry.delay(self.attempts, self.rng)
            return False
        self.dead_letters.park(self.name, env, self.last_error, self.attempts, now)
        self.dead_lettered += 1
        self.attempts = 0
        self.inbox.popleft()
        self.record.add(env.position)
        if self.recorder is not None:
            self.recorder.skipped(self.name, env, now, "dead-lettered")
        return True

    def commit(self) -> None:
        """Close the unit of work and make the record durable where the semantics keeps it."""
        self.undo.clear()
        self.unit.clear()
        self.policy.commit(self)
        hook = self.crash_hook
        if hook is not None:
            for p in hook.pending_after_checkpoint():
                if self.durable.contains(p) and self.record.contains(p):
                    try:
                        hook.check(_CHECKPOINT, p)
                    except ConsumerCrashed as crash:
                        self._crash(crash)
                        return
