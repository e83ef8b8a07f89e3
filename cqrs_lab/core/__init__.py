"""The deterministic CQRS engine (standard library only).

>>> from cqrs_lab.core import Engine, ManualClock
>>> engine = Engine(clock=ManualClock(), seed=1)
"""

from cqrs_lab.core.aggregate import Aggregate, Repository, on
from cqrs_lab.core.bus import (
    CommandBus,
    CommandResult,
    Decision,
    IdempotencyRecord,
    InMemoryIdempotencyStore,
    UnitOfWork,
)
from cqrs_lab.core.clock import CallableClock, Clock, ManualClock, MonotonicClock
from cqrs_lab.core.deadletters import DeadLetter, DeadLetterStore
from cqrs_lab.core.delivery import (
    AtLeastOnce,
    AtMostOnce,
    DeliveryPolicy,
    EffectivelyOnce,
    RetryPolicy,
    policy_named,
)
from cqrs_lab.core.engine import Engine
from cqrs_lab.core.faults import (
    CrashAt,
    CrashPoint,
    DelayAt,
    DropAt,
    DuplicateAt,
    FaultPlan,
    FaultyTransport,
    ReorderAt,
)
from cqrs_lab.core.group import SubscriptionGroup
from cqrs_lab.core.ids import IdFactory, SequentialIds, UuidIds
from cqrs_lab.core.messages import (
    ANY,
    NO_STREAM,
    Command,
    Envelope,
    Event,
    ExpectedVersion,
    RawEvent,
    event_to_dict,
)
from cqrs_lab.core.metrics import Counter, Histogram, Metrics
from cqrs_lab.core.outbox import OutboxRelay
from cqrs_lab.core.projections import Projection, QueryBus, QueryResult, Saga, SagaCause
from cqrs_lab.core.readmodel import Progress, Table
from cqrs_lab.core.schema import EventRegistry
from cqrs_lab.core.store import EventStore, InMemoryEventStore, OutboxMessage, Snapshot
from cqrs_lab.core.subscription import RecorderFanout, Subscription, SubscriptionRecorder

DELIVERY_POLICIES = ("at-most-once", "at-least-once", "effectively-once")

__all__ = [
    "ANY",
    "DELIVERY_POLICIES",
    "NO_STREAM",
    "Aggregate",
    "AtLeastOnce",
    "AtMostOnce",
    "CallableClock",
    "Clock",
    "Command",
    "CommandBus",
    "CommandResult",
    "Counter",
    "CrashAt",
    "CrashPoint",
    "DeadLetter",
    "DeadLetterStore",
    "Decision",
    "DelayAt",
    "DeliveryPolicy",
    "DropAt",
    "DuplicateAt",
    "EffectivelyOnce",
    "Engine",
    "Envelope",
    "Event",
    "EventRegistry",
    "EventStore",
    "ExpectedVersion",
    "FaultPlan",
    "FaultyTransport",
    "Histogram",
    "IdFactory",
    "IdempotencyRecord",
    "InMemoryEventStore",
    "InMemoryIdempotencyStore",
    "ManualClock",
    "Metrics",
    "MonotonicClock",
    "OutboxMessage",
    "OutboxRelay",
    "Progress",
    "Projection",
    "QueryBus",
    "QueryResult",
    "RawEvent",
    "RecorderFanout",
    "ReorderAt",
    "Repository",
    "RetryPolicy",
    "Saga",
    "SagaCause",
    "SequentialIds",
    "Snapshot",
    "Subscription",
    "SubscriptionGroup",
    "SubscriptionRecorder",
    "Table",
    "UnitOfWork",
    "UuidIds",
    "event_to_dict",
    "on",
    "policy_named",
]
