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
from cqrs_lab.core.domain import (
    Domain,
    Installed,
    Invariant,
    Query,
    Upcaster,
    View,
    install,
    load_domain,
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
from cqrs_lab.core.workload import CommandKind, Draw, Param, ReadKind, Workload

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
    "CommandKind",
    "CommandResult",
    "Counter",
    "CrashAt",
    "CrashPoint",
    "DeadLetter",
    "DeadLetterStore",
    "Decision",
    "DelayAt",
    "DeliveryPolicy",
    "Domain",
    "Draw",
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
    "Installed",
    "Invariant",
    "ManualClock",
    "Metrics",
    "MonotonicClock",
    "OutboxMessage",
    "OutboxRelay",
    "Param",
    "Progress",
    "Projection",
    "Query",
    "QueryBus",
    "QueryResult",
    "RawEvent",
    "ReadKind",
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
    "Upcaster",
    "UuidIds",
    "View",
    "Workload",
    "event_to_dict",
    "install",
    "load_domain",
    "on",
    "policy_named",
]
