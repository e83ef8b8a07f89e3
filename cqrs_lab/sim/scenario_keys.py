"""Every key of a scenario file, once: its type, unit, default and allowed values.

The readers (:mod:`cqrs_lab.sim.scenario_file`, :mod:`cqrs_lab.sim.scenario_load`) take keys,
defaults and bounds from :data:`TABLES`, and :mod:`cqrs_lab.sim.scenario_reference` renders
the same tables as the scenario file reference, so the two cannot disagree.

>>> [k.name for k in TABLES["faults.rebuild"].keys]
['at', 'projection', 'mode']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cqrs_lab.core import DELIVERY_POLICIES
from cqrs_lab.sim.distributions import DIST_KINDS, Dist
from cqrs_lab.sim.scenario_parts import (
    SLIS,
    CommandSpec,
    CrashSpec,
    ProjectionSpec,
    ReadSpec,
    ServerSpec,
)

__all__ = ["PROCESSES", "TABLES", "Key", "Table"]

PROCESSES = ("poisson", "constant", "onoff", "diurnal", "step", "spike", "trace")


@dataclass(frozen=True)
class Key:
    """One key: ``kind`` is number, whole, text, choice, time (seconds or a distribution),
    table or list; ``default`` None means absent (off). ``domain`` says what a domain
    supplies (its allowed values), ``doc`` what the key means."""

    name: str
    kind: str
    default: Any = None
    unit: str = ""
    doc: str = ""
    lo: float = 0.0
    hi: float = math.inf
    open_lo: bool = False
    choices: tuple[str, ...] = ()
    domain: str = ""

    @property
    def allowed(self) -> str:
        """The allowed values, in words."""
        if self.domain:
            return self.domain
        if self.choices:
            return "one of " + ", ".join(f"`{c}`" for c in self.choices)
        if self.kind in ("number", "whole"):
            lo = f"> {self.lo:g}" if self.open_lo else f">= {self.lo:g}"
            return lo + (f" and <= {self.hi:g}" if self.hi != math.inf else "")
        if self.kind == "time":
            return "seconds >= 0, or a distribution table"
        return {"text": "a string", "table": "a table", "list": "a list"}.get(self.kind, "")


@dataclass(frozen=True)
class Table:
    """A TOML table (``[path]``, or ``[[path]]`` when ``array``) and its keys."""

    path: str
    doc: str
    keys: tuple[Key, ...]
    array: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    def key(self, name: str) -> Key:
        return next(k for k in self.keys if k.name == name)


_S, _EV, _CMD = "seconds", "events", "commands"
_PS = "per second"
_P, _C, _R, _SV = ProjectionSpec(), CommandSpec(), ReadSpec(), ServerSpec()


def _dist(d: Dist) -> str:
    return f"{d.kind} mean {d.mean:g} s" + (
        f" cv {d.cv:g}" if d.kind in ("lognormal", "gamma") else ""
    )


_TABLES = (
    Table(
        "",
        "The top level: only these tables.",
        (
            Key("scenario", "table", doc="the run: [scenario]"),
            Key("workload", "table", doc="what arrives, on which keys: [workload]"),
            Key("commands", "table", doc="the command side: [commands]"),
            Key("projections", "table", doc="one table per view run: [projections.NAME]"),
            Key("reads", "table", doc="queries against a view: [reads]"),
            Key("server", "table", doc="the served process's event loop: [server]"),
            Key("faults", "table", doc="poison, schema drift, rebuild: [faults]"),
            Key("slo", "list", doc="service level objectives: [[slo]], one per objective"),
            Key("alerts", "list", doc="alert rules: [[alerts]], one per rule"),
        ),
    ),
    Table(
        "scenario",
        "The run itself.",
        (
            Key("name", "text", "<file name>", doc="the scenario's name"),
            Key("description", "text", "", doc="one line on what it shows"),
            Key("duration", "number", 60.0, _S, "simulated run length", open_lo=True),
            Key("seed", "whole", 42, "", "seed of every random stream", hi=2**63 - 1),
            Key(
                "bucket", "number", 1.0, _S, "time-series bucket width (<= duration)", open_lo=True
            ),
            Key(
                "domain",
                "text",
                "cqrs_lab.domains.bank",
                "",
                "the domain simulated: a module "
                "with a `domain` attribute, or `package.module:object`",
                domain="an importable reference to a `cqrs_lab.core.Domain` with a workload",
            ),
        ),
    ),
    Table(
        "workload",
        "The command stream. Besides these keys: the population key (named by "
        "the domain's workload: `accounts` for the bank, `products` for the inventory; a "
        "whole number of keys, default the workload's `default_population`) and the "
        "workload's parameters (bank: `opening_balance`, `max_amount`; inventory: "
        "`initial_stock`, `max_quantity`), validated by the workload's declaration.",
        (
            Key("arrivals", "table", doc="the arrival profile: [workload.arrivals]"),
            Key("mix", "table", doc="command kind -> weight: [workload.mix]"),
            Key(
                "keys",
                "choice",
                "uniform",
                "",
                "how keys are drawn (index 0 is the hottest under zipf)",
                choices=("uniform", "zipf"),
            ),
            Key("zipf_s", "number", 1.1, "", "the Zipf exponent", open_lo=True),
        ),
    ),
    Table(
        "workload.arrivals",
        "When commands arrive (rates per second).",
        (
            Key("process", "choice", "poisson", "", "the arrival process", choices=PROCESSES),
            Key(
                "rate",
                "number",
                100.0,
                f"{_CMD} {_PS}",
                "base rate (may be 0 for onoff and trace)",
                open_lo=True,
            ),
            Key("off_rate", "number", 0.0, f"{_CMD} {_PS}", "onoff: rate while off"),
            Key("on", "number", 1.0, _S, "onoff: length of an on period", open_lo=True),
            Key("off", "number", 1.0, _S, "onoff: length of an off period"),
            Key("amplitude", "number", 0.5, "", "diurnal: relative swing", hi=1.0),
            Key("period", "number", 60.0, _S, "diurnal: period", open_lo=True),
            Key("at", "number", 0.0, _S, "step and spike: when the rate changes"),
            Key("length", "number", 0.0, _S, "spike: how long the spike lasts"),
            Key("to_rate", "number", 0.0, f"{_CMD} {_PS}", "step and spike: the new rate"),
            Key("path", "text", "", "", "trace: CSV of time,kind rows (relative to the file)"),
            Key("speed", "number", 1.0, "", "trace: replay speed-up", open_lo=True),
        ),
    ),
    Table(
        "workload.mix",
        "Command kind -> weight (numbers >= 0, at least one > 0).",
        (),
    ),
    Table(
        "commands",
        "The command side: handler pool, service time, admission.",
        (
            Key("handlers", "whole", _C.handlers, "", "command handlers", lo=1, hi=10_000),
            Key("service", "time", _C.service, _S, "service time per command"),
            Key(
                "queue_limit",
                "whole",
                None,
                _CMD,
                "bound of the queue (absent: unbounded)",
                lo=1,
                hi=10**9,
            ),
            Key(
                "admission",
                "choice",
                _C.admission,
                "",
                "when the queue is full",
                choices=("reject", "block", "shed-oldest"),
            ),
            Key(
                "rate_limit",
                "number",
                None,
                f"{_CMD} {_PS}",
                "token bucket rate (absent: none)",
                open_lo=True,
            ),
            Key("burst", "whole", _C.burst, _CMD, "token bucket size", lo=1, hi=10**9),
            Key(
                "max_retries",
                "whole",
                _C.max_retries,
                "",
                "optimistic-concurrency retries",
                hi=10**9,
            ),
            Key(
                "processes",
                "whole",
                _C.processes,
                "",
                "server processes, each with its own queue, admission (queue_limit, "
                "rate_limit) and `handlers` handlers; arrivals spread over them at random "
                "(with [server]: an event loop each, with its writer and replicas of the views)",
                lo=1,
                hi=1024,
            ),
            Key(
                "commit_visibility",
                "time",
                _C.commit_visibility,
                _S,
                "from an event's commit until projections can read it (in commit order, "
                "as a gap-safe reader waits for older transactions)",
            ),
        ),
    ),
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
            Key("partitions", "whole", _P.partitions, "", "partitions of the log", lo=1, hi=4096),
            Key(
                "consumers",
                "whole",
                _P.consumers,
                "",
                "consumer processes (<= partitions)",
                lo=1,
                hi=4096,
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
    Table(
        "server",
        "Each served process as one event loop (absent: handlers work in parallel). Every "
        "piece of work runs on its process's CPU in turn: each request's parsing and answer, "
        "the writer's batches (each command's [commands] service inside), the projections' "
        "batches and the reads' service. Needs [commands] handlers = 1; [commands] processes "
        "= N runs N loops, each with its own writer and its own replica of every view, fed "
        "with every event.",
        (
            Key(
                "request",
                "time",
                _SV.request,
                _S,
                "CPU per HTTP request outside the engine and the transport",
            ),
            Key(
                "transport",
                "time",
                _SV.transport,
                _S,
                "CPU per HTTP request of the transport's read callback, which runs as a turn "
                "of the loop of its own before the request's (0: none of its own)",
            ),
            Key(
                "answer_share",
                "number",
                _SV.answer_share,
                "",
                "share of it spent answering",
                hi=1.0,
            ),
            Key("batch", "time", _SV.batch, _S, "CPU per writer batch (one transaction)"),
            Key(
                "batch_limit",
                "whole",
                _SV.batch_limit,
                _CMD,
                "most commands per batch",
                lo=1,
                hi=10**6,
            ),
            Key("cold", "number", _SV.cold, "", "extra cost factor of work after a long idle"),
            Key(
                "cold_time",
                "number",
                _SV.cold_time,
                _S,
                "idle time constant of that slow-down",
                open_lo=True,
            ),
            Key(
                "cpus",
                "number",
                _SV.cpus,
                "cores",
                "CPU limit (a container's quota)",
                open_lo=True,
                hi=1.0,
            ),
            Key(
                "period",
                "number",
                _SV.period,
                _S,
                "the CPU limit's accounting period",
                open_lo=True,
            ),
            Key(
                "commit",
                "time",
                _SV.commit,
                _S,
                "a writer batch's wait for the database's commit round trips, after its CPU: "
                "the loop is blocked, spending no CPU",
            ),
            Key(
                "commit_per_command",
                "number",
                _SV.commit_per_command,
                _S,
                "how much longer a batch's commit wait is per command beyond its first (the "
                "database writes more rows)",
            ),
            Key(
                "pump_wait",
                "time",
                _SV.pump_wait,
                _S,
                "a projection pump step's wait for the database's read, after its CPU: the "
                "loop is blocked, spending no CPU",
            ),
            Key(
                "poll",
                "number",
                _SV.poll,
                _S,
                "a process's pump, idle, looks for the other processes' appends this often "
                "(its own wake it at once; 0: every append wakes every pump)",
            ),
            Key(
                "cores",
                "whole",
                _SV.cores,
                "cores",
                "CPUs of the machine the loops share (absent: a core per loop)",
                lo=1,
                hi=4096,
            ),
            Key(
                "other_cpu",
                "number",
                _SV.other_cpu,
                _S,
                "CPU per arriving command that the rest of the machine (the load generator, a "
                "local database) spends on the cores the loops share, in pieces that each take "
                "a free core (needs cores: there is nothing to share it on without them)",
            ),
            Key(
                "database_cpu",
                "number",
                _SV.database_cpu,
                _S,
                "CPU a local database spends on the cores the loops share per transaction it "
                "serves: each writer batch and each projection pump step (needs cores)",
            ),
        ),
    ),
    Table(
        "faults",
        "Scripted incidents.",
        (
            Key(
                "poison",
                "list",
                (),
                _S,
                "times at which a poison event is appended (every "
                "handler fails on it; retried, then dead-lettered)",
            ),
            Key("drift", "table", doc="[faults.drift]"),
            Key("rebuild", "table", doc="[faults.rebuild]"),
        ),
    ),
    Table(
        "faults.drift",
        "A newer producer writes an event at schema version 2.",
        (
            Key(
                "event",
                "text",
                "<the first kind's first event>",
                "",
                "the event type drifted",
                domain="an event type of the domain (bank default: Deposited)",
            ),
            Key("start", "number", 10.0, _S, "when the producer starts"),
            Key("rate", "number", 5.0, f"events {_PS}", "how often it writes", open_lo=True),
            Key("stop", "number", None, _S, "when it stops (absent: never)", open_lo=True),
            Key(
                "fix_at",
                "number",
                None,
                _S,
                "when readers learn version 2 and replay the dead "
                "letters (absent: never; >= start)",
                open_lo=True,
            ),
        ),
    ),
    Table(
        "faults.rebuild",
        "Rebuild a view from position 0.",
        (
            Key("at", "number", 10.0, _S, "when"),
            Key(
                "projection",
                "choice",
                "<the first view>",
                "",
                "which view",
                domain="a view the scenario runs",
            ),
            Key(
                "mode",
                "choice",
                "in-place",
                "",
                "shadow needs partitions = 1",
                choices=("in-place", "shadow"),
            ),
        ),
    ),
    Table(
        "slo",
        "Service level objectives, one [[slo]] each.",
        (
            Key("name", "text", "<sli>-<index>", "", "what it is called"),
            Key("sli", "choice", None, "", "the indicator (required)", choices=SLIS),
            Key(
                "threshold",
                "number",
                0.0,
                "seconds (events for backlog)",
                "good when the indicator is at most this (required except for error_rate)",
            ),
            Key(
                "objective",
                "number",
                0.99,
                "",
                "fraction of good events (< 1)",
                hi=1.0,
                open_lo=True,
            ),
            Key(
                "projection",
                "choice",
                None,
                "",
                "the view (required for projection_lag and backlog)",
                domain="a view the scenario runs",
            ),
            Key(
                "period", "number", None, _S, "error budget period (absent: the run)", open_lo=True
            ),
        ),
        array=True,
    ),
    Table(
        "alerts",
        "Multi-window burn-rate alert rules (absent: the SRE workbook's).",
        (
            Key("severity", "choice", "page", "", "", choices=("page", "ticket")),
            Key("long_window", "number", 60.0, _S, "long window", open_lo=True),
            Key("short_window", "number", 5.0, _S, "short window (<= long_window)", open_lo=True),
            Key(
                "burn_rate",
                "number",
                1.0,
                "",
                "fires when both windows burn at least this",
                open_lo=True,
            ),
        ),
        array=True,
    ),
    Table(
        "<distribution>",
        "A time given as a table instead of a bare number of seconds.",
        (
            Key("dist", "choice", None, "", "the distribution (required)", choices=DIST_KINDS),
            Key("mean", "number", None, _S, "the mean (required but for empirical)"),
            Key("value", "number", None, _S, "deterministic: the value (same as mean)"),
            Key(
                "cv", "number", None, "", "lognormal and gamma (required): coefficient of variation"
            ),
            Key("samples", "list", None, _S, "empirical: the observed times"),
            Key(
                "file",
                "text",
                None,
                "",
                "empirical, instead of samples: a CSV of the observed times in seconds, one a "
                "line (a header line allowed), relative to the scenario file",
            ),
        ),
    ),
)

#: table path -> its keys ("projections.NAME" stands for every view's table)
TABLES = {t.path: t for t in _TABLES}


def describe_default(key: Key) -> str:
    """The default as the reference prints it."""
    d = key.default
    if d is None or d == ():
        return "absent"
    if isinstance(d, Dist):
        return _dist(d)
    if isinstance(d, str) and d.startswith("<"):
        return d.strip("<>")
    return f"`{d!r}`" if isinstance(d, str) else f"`{d:g}`" if isinstance(d, float) else f"`{d}`"
