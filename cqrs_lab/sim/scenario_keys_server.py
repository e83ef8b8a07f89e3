"""``[server]``: the served processes as event loops: their keys, each once
(:mod:`cqrs_lab.sim.scenario_keys` gathers every table)."""

from __future__ import annotations

from cqrs_lab.sim.scenario_key_types import COMMANDS as _CMD
from cqrs_lab.sim.scenario_key_types import SECONDS as _S
from cqrs_lab.sim.scenario_key_types import Key, Table
from cqrs_lab.sim.scenario_parts import ServerSpec

__all__ = ["SERVER_TABLES"]

_SV = ServerSpec()

SERVER_TABLES: tuple[Table, ...] = (
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
                "transport_cold",
                "number",
                _SV.transport_cold,
                "",
                "the transport's reads' own extra cost factor after a long idle (absent: cold)",
            ),
            Key(
                "transport_cold_time",
                "number",
                _SV.transport_cold_time,
                _S,
                "idle time constant of the transport's own slow-down (absent: cold_time)",
                open_lo=True,
            ),
            Key(
                "transport_repeat",
                "number",
                _SV.transport_repeat,
                "",
                "cost factor of a transport's read that runs right after another read (a run "
                "of like work is cheaper: 1, no difference)",
                open_lo=True,
                hi=10.0,
            ),
            Key(
                "request_repeat",
                "number",
                _SV.request_repeat,
                "",
                "cost factor of a request's parsing or answer right after another request's",
                open_lo=True,
                hi=10.0,
            ),
            Key(
                "command_repeat",
                "number",
                _SV.command_repeat,
                "",
                "cost factor of a command's service after the previous command's in a writer batch",
                open_lo=True,
                hi=10.0,
            ),
            Key(
                "speed_sd",
                "number",
                _SV.speed_sd,
                "",
                "how much the machine's speed wanders: the standard deviation of the log of the "
                "factor on every piece of work's CPU (its mean is one; 0: a constant speed)",
                hi=2.0,
            ),
            Key(
                "speed_time",
                "number",
                _SV.speed_time,
                _S,
                "how long a slow or fast stretch of the machine lasts: the time constant of "
                "that log's correlation",
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
                "quota_carry",
                "number",
                _SV.quota_carry,
                _S,
                "how much of a period's quota a process left unused it may still run in the "
                "next period (Linux keeps 1 ms of it; 0: a strict quota per period)",
                hi=1.0,
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
                "pump_wait_per_event",
                "number",
                _SV.pump_wait_per_event,
                _S,
                "how much longer a pump step's wait is per event it carries (the database "
                "reads and writes more rows)",
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
            Key(
                "clients",
                "whole",
                _SV.clients,
                "requests",
                "the load generator's users: at most this many requests (commands and reads) "
                "in flight, a send finding none free waits for one (0: no limit, open arrivals)",
                lo=0,
                hi=1_000_000,
            ),
        ),
    ),
)
