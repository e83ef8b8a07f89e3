"""Load a scenario from TOML (a file, a string or a dict) and check it as a whole.

Top-level tables: ``[scenario]`` (name, description, duration, seed, bucket),
``[workload]`` (with ``[workload.arrivals]`` and ``[workload.mix]``), ``[commands]``,
``[projections.NAME]`` (NAME one of balances, statements, transfer-saga), ``[reads]``,
``[faults]`` (poison, ``[faults.drift]``, ``[faults.rebuild]``), ``[[slo]]`` and
``[[alerts]]``. See the files in ``scenarios/`` for every key in use.

>>> parse_scenario({"scenario": {"duration": -1}}, source="x.toml")
Traceback (most recent call last):
...
cqrs_lab.errors.ScenarioError: x.toml: 'scenario.duration' must be a number > 0, got -1
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cqrs_lab.errors import ScenarioError
from cqrs_lab.sim.scenario import (
    PROJECTIONS,
    SLIS,
    AlertRule,
    DriftSpec,
    ReadSpec,
    RebuildSpec,
    Scenario,
    SloSpec,
)
from cqrs_lab.sim.scenario_file import (
    Section,
    read_commands,
    read_projection,
    read_workload,
    strict_keys,
)

__all__ = ["check_scenario", "load_scenario", "parse_scenario"]

_TOP = ("scenario", "workload", "commands", "projections", "reads", "faults", "slo", "alerts")


def load_scenario(path: str | Path) -> Scenario:
    """Read and check the scenario file at ``path`` (relative trace paths resolve beside it)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read the scenario file ({exc.strerror})") from None
    return parse_scenario(text, source=str(p), base=p.parent)


def parse_scenario(
    data: str | Mapping[str, Any], *, source: str = "<scenario>", base: Path | None = None
) -> Scenario:
    """Build a :class:`Scenario` from TOML text or an already-parsed mapping."""
    if isinstance(data, str):
        try:
            data = tomllib.loads(data)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    top = Section(data, "", source)
    strict_keys(top, _TOP)
    sc = top.sub("scenario") or Section({}, "scenario", source)
    strict_keys(sc, ("name", "description", "duration", "seed", "bucket"))
    default_name = Path(source).stem if source != "<scenario>" else "scenario"
    wl, cm, pr = top.sub("workload"), top.sub("commands"), top.sub("projections")
    projections = []
    if pr is not None:
        strict_keys(pr, PROJECTIONS)
        projections = [
            read_projection(n, Section(pr.raw(n), pr.key(n), source))
            for n in PROJECTIONS
            if pr.has(n)
        ]
    reads = _reads(rd) if (rd := top.sub("reads")) is not None else None
    poison: tuple[float, ...] = ()
    drift = rebuild = None
    if (fl := top.sub("faults")) is not None:
        strict_keys(fl, ("poison", "drift", "rebuild"))
        if fl.has("poison"):
            times = fl.raw("poison")
            if not isinstance(times, list) or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and x >= 0 for x in times
            ):
                fl.fail(fl.key("poison"), f"must be a list of times in seconds >= 0, got {times!r}")
            poison = tuple(sorted(float(x) for x in times))
        if (d := fl.sub("drift")) is not None:
            strict_keys(d, ("start", "rate", "stop", "fix_at"))
            drift = DriftSpec(
                d.num("start", 10.0),
                d.num("rate", 5.0, open_lo=True),
                d.opt_num("stop"),
                d.opt_num("fix_at"),
            )
        if (r := fl.sub("rebuild")) is not None:
            strict_keys(r, ("at", "projection", "mode"))
            rebuild = RebuildSpec(
                r.num("at", 10.0),
                r.str_("projection", "balances", PROJECTIONS),
                r.str_("mode", "in-place", ("in-place", "shadow")),
            )
    scenario = Scenario(
        name=sc.str_("name", default_name),
        description=sc.str_("description", ""),
        duration=sc.num("duration", 60.0, open_lo=True),
        seed=sc.int_("seed", 42, hi=2**63 - 1),
        bucket=sc.num("bucket", 1.0, open_lo=True),
        workload=read_workload(wl, base) if wl is not None else Scenario().workload,
        commands=read_commands(cm) if cm is not None else Scenario().commands,
        projections=tuple(projections) if pr is not None else Scenario().projections,
        reads=reads,
        poison=poison,
        drift=drift,
        rebuild=rebuild,
        slos=tuple(_slos(top)),
        alerts=_alerts(top),
        source=source,
    )
    return check_scenario(scenario)


def _reads(t: Section) -> ReadSpec:
    strict_keys(t, ("rate", "readers", "service", "projection", "follow_writes", "think"))
    return ReadSpec(
        rate=t.num("rate", 100.0),
        readers=t.int_("readers", 4, lo=1),
        service=t.dist("service", ReadSpec().service),
        projection=t.str_("projection", "balances", ("balances", "statements")),
        follow_writes=t.num("follow_writes", 0.0, hi=1.0),
        think=t.num("think", 0.05),
    )


def _slos(top: Section) -> list[SloSpec]:
    if not top.has("slo"):
        return []
    items = top.raw("slo")
    if not isinstance(items, list):
        top.fail(
            "slo", "must be an array of tables: [[slo]] name = ..., sli = ..., threshold = ..."
        )
    out = []
    for i, item in enumerate(items):
        t = Section(item, f"slo[{i}]", top.source)
        strict_keys(t, ("name", "sli", "threshold", "objective", "projection", "period"))
        sli = t.str_("sli", "", SLIS)
        if not sli:
            t.fail(t.key("sli"), f"is required: one of {', '.join(SLIS)}")
        if not t.has("threshold") and sli != "error_rate":
            t.fail(t.key("threshold"), "is required (seconds, or events for backlog)")
        proj = t.str_("projection", "", PROJECTIONS) or None
        out.append(
            SloSpec(
                name=t.str_("name", f"{sli}-{i}"),
                sli=sli,
                threshold=t.num("threshold", 0.0),
                objective=t.num("objective", 0.99, lo=0.0, hi=1.0, open_lo=True),
                projection=proj,
                period=t.opt_num("period"),
            )
        )
        if out[-1].objective >= 1.0:
            t.fail(t.key("objective"), "must be below 1 (an objective of 1 leaves no error budget)")
    return out


def _alerts(top: Section) -> tuple[AlertRule, ...] | None:
    if not top.has("alerts"):
        return None
    items = top.raw("alerts")
    if not isinstance(items, list) or not items:
        top.fail("alerts", "must be a non-empty array of tables [[alerts]]")
    rules = []
    for i, item in enumerate(items):
        t = Section(item, f"alerts[{i}]", top.source)
        strict_keys(t, ("severity", "long_window", "short_window", "burn_rate"))
        rule = AlertRule(
            t.str_("severity", "page", ("page", "ticket")),
            t.num("long_window", 60.0, open_lo=True),
            t.num("short_window", 5.0, open_lo=True),
            t.num("burn_rate", 1.0, open_lo=True),
        )
        if rule.short_window > rule.long_window:
            t.fail(t.key("short_window"), f"must be <= long_window ({rule.long_window:g})")
        rules.append(rule)
    return tuple(rules)


def check_scenario(s: Scenario) -> Scenario:
    """Cross-field checks (a transfer mix needs the saga, ...); returns ``s`` unchanged."""

    def fail(key: str, problem: str) -> None:
        raise ScenarioError(f"{s.source}: {key!r} {problem}")

    if not s.duration > 0:
        fail("scenario.duration", f"must be a number > 0, got {s.duration!r}")
    if not s.bucket > 0 or s.bucket > s.duration:
        fail("scenario.bucket", f"must be > 0 and <= duration ({s.duration:g}), got {s.bucket!r}")
    names = [p.name for p in s.projections]
    if not names:
        fail("projections", f"needs at least one of {', '.join(PROJECTIONS)}")
    if len(set(names)) != len(names):
        fail("projections", f"names a projection twice: {names}")
    if dict(s.workload.mix).get("transfer", 0) > 0 and "transfer-saga" not in names:
        fail("workload.mix.transfer", "needs [projections.transfer-saga] to carry transfers out")
    for p in s.projections:
        key = f"projections.{p.name}"
        if p.name == "transfer-saga" and p.delivery == "at-most-once":
            pass  # allowed: a lab shows what it loses
        if p.checkpoint_interval is not None and p.delivery != "at-least-once":
            fail(
                f"{key}.checkpoint_interval",
                "applies to delivery = 'at-least-once' only "
                "(at-most-once checkpoints before, effectively-once with each batch)",
            )
        if p.autoscale is not None:
            a = p.autoscale
            if a.min > a.max:
                fail(f"{key}.autoscale.min", f"must be <= max ({a.max}), got {a.min}")
            if a.max > p.partitions:
                fail(
                    f"{key}.autoscale.max",
                    f"must be <= partitions ({p.partitions}): a "
                    "consumer without a partition has nothing to do",
                )
            if a.scale_in_below >= a.scale_out_above:
                fail(f"{key}.autoscale.scale_in_below", "must be < scale_out_above")
        elif p.consumers > p.partitions:
            fail(f"{key}.consumers", f"must be <= partitions ({p.partitions}), got {p.consumers}")
    if s.reads is not None and s.reads.projection not in names:
        fail("reads.projection", f"names {s.reads.projection!r}, not among {names}")
    if s.rebuild is not None:
        if s.rebuild.projection not in names:
            fail("faults.rebuild.projection", f"names {s.rebuild.projection!r}, not among {names}")
        if s.rebuild.mode == "shadow" and s.projection(s.rebuild.projection).partitions != 1:
            fail(
                "faults.rebuild.mode",
                "'shadow' needs partitions = 1 for that projection "
                "(a partitioned group rebuilds in place)",
            )
    if s.drift is not None and s.drift.fix_at is not None and s.drift.fix_at < s.drift.start:
        fail("faults.drift.fix_at", f"must be >= start ({s.drift.start:g})")
    for i, slo in enumerate(s.slos):
        if slo.sli in ("projection_lag", "backlog") and slo.projection is None:
            fail(f"slo[{i}].projection", f"is required for sli = {slo.sli!r}: one of {names}")
        if slo.projection is not None and slo.projection not in names:
            fail(f"slo[{i}].projection", f"names {slo.projection!r}, not among {names}")
        if slo.sli in ("query_latency", "read_staleness") and s.reads is None:
            fail(f"slo[{i}].sli", f"{slo.sli!r} needs a [reads] section")
    if s.workload.arrivals.process == "trace" and not s.workload.arrivals.trace:
        fail("workload.arrivals.path", "holds no rows: want lines of time,command")
    return s
