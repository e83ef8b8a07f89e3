"""The top level, ``[scenario]``, ``[workload]`` (its arrivals and mix) and ``[commands]``:
their keys, each once (:mod:`cqrs_lab.sim.scenario_keys` gathers every table)."""

from __future__ import annotations

from cqrs_lab.sim.scenario_key_types import COMMANDS as _CMD
from cqrs_lab.sim.scenario_key_types import PER_SECOND as _PS
from cqrs_lab.sim.scenario_key_types import PROCESSES, Key, Table
from cqrs_lab.sim.scenario_key_types import SECONDS as _S
from cqrs_lab.sim.scenario_parts import CommandSpec

__all__ = ["RUN_TABLES"]

_C = CommandSpec()

RUN_TABLES: tuple[Table, ...] = (
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
)
