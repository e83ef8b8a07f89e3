"""``[faults]`` (drift, rebuild), ``[slo]``, ``[alerts]`` and a distribution's table: their
keys, each once (:mod:`cqrs_lab.sim.scenario_keys` gathers every table)."""

from __future__ import annotations

from cqrs_lab.sim.distributions import DIST_KINDS
from cqrs_lab.sim.scenario_key_types import PER_SECOND as _PS
from cqrs_lab.sim.scenario_key_types import SECONDS as _S
from cqrs_lab.sim.scenario_key_types import Key, Table
from cqrs_lab.sim.scenario_parts import SLIS

__all__ = ["FAULT_TABLES"]


FAULT_TABLES: tuple[Table, ...] = (
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
                "cv",
                "number",
                None,
                "",
                "lognormal and gamma (required): coefficient of variation",
                hi=100.0,
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
