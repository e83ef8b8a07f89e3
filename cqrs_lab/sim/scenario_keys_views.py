"""The read side: ``[projections.NAME]`` (crash, autoscale, retry, transport) and ``[reads]``:
their keys, each once (:mod:`cqrs_lab.sim.scenario_keys` gathers every table)."""

from __future__ import annotations

from cqrs_lab.core import DELIVERY_POLICIES
from cqrs_lab.core.partitions import MAX_PARTITIONS
from cqrs_lab.sim.scenario_key_types import EVENTS as _EV
from cqrs_lab.sim.scenario_key_types import PER_SECOND as _PS
from cqrs_lab.sim.scenario_key_types import SECONDS as _S
from cqrs_lab.sim.scenario_key_types import Key, Table
from cqrs_lab.sim.scenario_parts import CrashSpec, ProjectionSpec, ReadSpec

__all__ = ["VIEW_TABLES"]

_P = ProjectionSpec()
_R = ReadSpec()

VIEW_TABLES: tuple[Table, ...] = (
    Table(
        "projections.NAME",
        "One consumer group per view; NAME is one of the domain's "
        "views (bank: balances, statements, transfer-saga; inventory: stock). Absent: the "
        "domain's first view with these defaults.",
        (
            Key(
                "delivery",
                "choice",
                _P.delivery,
                "",
                "delivery semantics",
                choices=DELIVERY_POLICIES,
            ),
            Key(
                "partitions",
                "whole",
                _P.partitions,
                "",
                "partitions of the log",
                lo=1,
                hi=MAX_PARTITIONS,
            ),
            Key(
                "consumers",
                "whole",
                _P.consumers,
                "",
                "consumer processes (<= partitions)",
                lo=1,
                hi=MAX_PARTITIONS,
            ),
            Key("batch_size", "whole", _P.batch_size, _EV, "events per batch", lo=1, hi=10**9),
            Key("per_event", "time", _P.per_event, _S, "cost of one event in a batch"),
            Key("per_batch", "time", _P.per_batch, _S, "fixed cost of a batch"),
            Key(
                "checkpoint_interval",
                "number",
                None,
                _S,
                "at-least-once: seconds between checkpoint commits (absent: each batch)",
                open_lo=True,
            ),
            Key("linger", "number", 0.0, _S, "wait after waking, to fill a batch"),
            Key(
                "session_timeout",
                "number",
                None,
                _S,
                "a dead consumer's partitions move after this (absent: they wait for the repair)",
            ),
            Key("crash", "table", doc="consumer crashes: [projections.NAME.crash]"),
            Key("autoscale", "table", doc="[projections.NAME.autoscale]"),
            Key(
                "transient_errors", "number", 0.0, "", "probability one handler call fails", hi=1.0
            ),
            Key("retry", "table", doc="[projections.NAME.retry]"),
            Key("transport", "table", doc="[projections.NAME.transport]"),
        ),
    ),
    Table(
        "projections.NAME.crash",
        "Consumer crashes, per consumer.",
        (
            Key("ttf", "time", CrashSpec().ttf, _S, "time to failure"),
            Key("ttr", "time", CrashSpec().ttr, _S, "time to repair"),
        ),
    ),
    Table(
        "projections.NAME.autoscale",
        "Scale consumers on a metric.",
        (
            Key(
                "metric",
                "choice",
                "backlog",
                "",
                "backlog (events) or lag (seconds)",
                choices=("backlog", "lag"),
            ),
            Key("scale_out_above", "number", 1000.0, "events or seconds", "add a consumer above"),
            Key("scale_in_below", "number", 100.0, "events or seconds", "remove one below"),
            Key("min", "whole", 1, "", "fewest consumers", lo=1, hi=10**9),
            Key("max", "whole", 8, "", "most consumers (<= partitions)", lo=1, hi=10**9),
            Key("cooldown", "number", 30.0, _S, "between two scaling actions"),
            Key("interval", "number", 5.0, _S, "between two looks at the metric", open_lo=True),
            Key("startup_delay", "number", 10.0, _S, "before a new consumer works"),
        ),
    ),
    Table(
        "projections.NAME.retry",
        "Handler retries with backoff, then the dead-letter store.",
        (
            Key("max_attempts", "whole", 5, "", "attempts before dead-lettering", lo=1, hi=10**9),
            Key("base", "number", 0.1, _S, "first backoff"),
            Key("factor", "number", 2.0, "", "backoff growth", lo=1.0),
            Key("max_delay", "number", 10.0, _S, "longest backoff"),
            Key(
                "jitter", "choice", "full", "", "backoff jitter", choices=("full", "equal", "none")
            ),
        ),
    ),
    Table(
        "projections.NAME.transport",
        "Transport faults between the log and the consumer.",
        (
            Key("drop", "number", 0.0, "", "probability a delivery is dropped", hi=1.0),
            Key("duplicate", "number", 0.0, "", "probability it is duplicated", hi=1.0),
            Key("reorder", "number", 0.0, "", "probability it is reordered", hi=1.0),
            Key("delay", "number", 0.0, "", "probability it is delayed", hi=1.0),
            Key("delay_min", "number", 0.01, _S, "shortest delay"),
            Key("delay_max", "number", 0.1, _S, "longest delay (>= delay_min)"),
            Key("redelivery_timeout", "number", 1.0, _S, "when a dropped delivery comes again"),
        ),
    ),
    Table(
        "reads",
        "Queries against a view (absent: no reads).",
        (
            Key("rate", "number", _R.rate, f"reads {_PS}", "independent reads"),
            Key("readers", "whole", _R.readers, "", "reader pool", lo=1, hi=10**9),
            Key("service", "time", _R.service, _S, "service time per read"),
            Key(
                "projection",
                "choice",
                "<the first view the workload reads>",
                "",
                "the view read",
                domain="a view the domain's workload declares a read for (bank: "
                "balances, statements; inventory: stock), run by the scenario",
            ),
            Key(
                "follow_writes",
                "number",
                0.0,
                "",
                "probability a client reads its write back",
                hi=1.0,
            ),
            Key("think", "number", 0.05, _S, "before that read-back"),
        ),
    ),
)
