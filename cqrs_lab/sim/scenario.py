"""A scenario: its domain, workload, topology, delivery semantics, faults, SLOs and run length.

Scenarios are usually read from TOML files (:func:`cqrs_lab.sim.load_scenario`); every part
is a frozen dataclass (:mod:`cqrs_lab.sim.scenario_parts`), so a notebook can derive
variants with :meth:`Scenario.with_`, which checks the result again (:func:`check_scenario`).
``domain`` names the system simulated (default: the bank); its views, command kinds and
workload parameters are what the scenario may name.

>>> from cqrs_lab.sim import builtin_scenario
>>> s = builtin_scenario("baseline").with_(duration=5.0)
>>> (s.name, s.duration, s.projections[0].name, s.resolved_domain.name)
('baseline', 5.0, 'balances', 'bank')
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from cqrs_lab.core.domain import Domain, load_domain
from cqrs_lab.core.workload import Workload
from cqrs_lab.errors import ConfigError, ScenarioError
from cqrs_lab.sim.domain_probe import probe
from cqrs_lab.sim.scenario_parts import (
    SLIS,
    AlertRule,
    ArrivalSpec,
    AutoscaleSpec,
    CommandSpec,
    CrashSpec,
    DriftSpec,
    ProjectionSpec,
    ReadSpec,
    RebuildSpec,
    RetrySpec,
    ServerSpec,
    SloSpec,
    TransportSpec,
    WorkloadSpec,
)
from cqrs_lab.sim.scenario_work import MAX_WORK, work

__all__ = [
    "DEFAULT_DOMAIN",
    "SLIS",
    "AlertRule",
    "ArrivalSpec",
    "AutoscaleSpec",
    "CommandSpec",
    "CrashSpec",
    "DriftSpec",
    "ProjectionSpec",
    "ReadSpec",
    "RebuildSpec",
    "RetrySpec",
    "Scenario",
    "ServerSpec",
    "SloSpec",
    "TransportSpec",
    "WorkloadSpec",
    "check_scenario",
    "resolve_domain",
    "workload_keys",
]

#: the domain a scenario simulates when it names none
DEFAULT_DOMAIN = "cqrs_lab.domains.bank"


def resolve_domain(ref: str, source: str = "<scenario>") -> Domain:
    """The domain ``ref`` names, or a ScenarioError naming the file and ``scenario.domain``."""
    try:
        return load_domain(ref)
    except ConfigError as exc:
        raise ScenarioError(f"{source}: 'scenario.domain' {exc}") from None


def workload_of(domain: Domain, source: str = "<scenario>") -> Workload:
    """The domain's workload, or a ScenarioError: a simulation needs one to draw commands."""
    if domain.workload is None:
        raise ScenarioError(
            f"{source}: 'scenario.domain' names domain {domain.name!r}, which declares no "
            "workload; declare one (command kinds and samplers) to simulate it"
        )
    return domain.workload


@dataclass(frozen=True)
class Scenario:
    """Everything one simulation run needs; ``source`` names where it was read from."""

    name: str = "scenario"
    description: str = ""
    duration: float = 60.0
    seed: int = 42
    bucket: float = 1.0
    domain: str = DEFAULT_DOMAIN
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    commands: CommandSpec = field(default_factory=CommandSpec)
    projections: tuple[ProjectionSpec, ...] = (ProjectionSpec(),)
    reads: ReadSpec | None = None
    server: ServerSpec | None = None
    poison: tuple[float, ...] = ()
    drift: DriftSpec | None = None
    rebuild: RebuildSpec | None = None
    slos: tuple[SloSpec, ...] = ()
    alerts: tuple[AlertRule, ...] | None = None  # None: the SRE workbook's rules
    source: str = "<scenario>"

    @property
    def resolved_domain(self) -> Domain:
        """The :class:`~cqrs_lab.core.Domain` that ``domain`` names (imported once)."""
        return resolve_domain(self.domain, self.source)

    def mix(self) -> tuple[tuple[str, float], ...]:
        """The command mix run: the scenario's, or the domain's declared one (see WorkloadSpec)."""
        if self.workload.mix:
            return self.workload.mix
        domain = self.resolved_domain
        needs = probe(domain).needs_saga
        names = {p.name for p in self.projections}
        return tuple(
            (k.name, k.weight)
            for k in workload_of(domain, self.source).kinds
            if set(needs.get(k.name, ())) <= names or not needs.get(k.name)
        )

    def params(self) -> dict[str, Any]:
        """The domain workload's parameters: the scenario's over the declared defaults."""
        return workload_of(self.resolved_domain, self.source).resolve(dict(self.workload.params))

    def with_(self, **changes: Any) -> Scenario:
        """A copy with top-level fields changed (validated again)."""
        return check_scenario(dataclasses.replace(self, **changes))

    def projection(self, name: str) -> ProjectionSpec:
        for p in self.projections:
            if p.name == name:
                return p
        raise ScenarioError(
            f"{self.source}: no projection {name!r} in this scenario "
            f"(it has {[p.name for p in self.projections]})"
        )

    def with_projection(self, name: str, **changes: Any) -> Scenario:
        """A copy with one projection's fields changed, e.g. ``consumers=4``."""
        self.projection(name)
        new = tuple(
            dataclasses.replace(p, **changes) if p.name == name else p for p in self.projections
        )
        return self.with_(projections=new)

    def with_commands(self, **changes: Any) -> Scenario:
        """A copy with command-side fields changed, e.g. ``handlers=8``."""
        return self.with_(commands=dataclasses.replace(self.commands, **changes))

    def with_rate(self, rate: float) -> Scenario:
        """A copy whose arrival profile has base ``rate`` (commands per second)."""
        arrivals = dataclasses.replace(self.workload.arrivals, rate=float(rate))
        return self.with_(workload=dataclasses.replace(self.workload, arrivals=arrivals))


def check_scenario(s: Scenario) -> Scenario:
    """Cross-field checks against the domain (a transfer mix needs the saga, ...); returns
    ``s`` unchanged."""

    def fail(key: str, problem: str) -> None:
        raise ScenarioError(f"{s.source}: {key!r} {problem}")

    if not s.duration > 0:
        fail("scenario.duration", f"must be a number > 0, got {s.duration!r}")
    if not s.bucket > 0 or s.bucket > s.duration:
        fail("scenario.bucket", f"must be > 0 and <= duration ({s.duration:g}), got {s.bucket!r}")
    domain = s.resolved_domain
    workload = workload_of(domain, s.source)
    views = domain.view_names
    names = [p.name for p in s.projections]
    if not names:
        fail("projections", f"needs at least one of the domain's views: {', '.join(views)}")
    if len(set(names)) != len(names):
        fail("projections", f"names a projection twice: {names}")
    for n in names:
        if n not in views:
            fail(
                f"projections.{n}",
                f"is not a view of domain {domain.name!r}; its views: {', '.join(views)}",
            )
    _check_workload(s, workload, fail)
    for p in s.projections:
        _check_projection(p, fail)
    if s.reads is not None:
        readable = [r.view for r in workload.reads]
        if s.reads.projection not in readable:
            fail(
                "reads.projection",
                f"names {s.reads.projection!r}; the workload of domain {domain.name!r} reads "
                f"{', '.join(readable) or 'no view'}",
            )
        if s.reads.projection not in names:
            fail("reads.projection", f"names {s.reads.projection!r}, not among {names}")
    if s.server is not None and s.commands.handlers != 1:
        fail("commands.handlers", "must be 1 with [server]: one event loop runs the commands")
    for key in ("other_cpu", "database_cpu"):  # spent on the cores the loops share
        if s.server is not None and getattr(s.server, key) > 0 and s.server.cores is None:
            fail(f"server.{key}", "is spent on the machine's shared cores: set server.cores too")
    if s.rebuild is not None:
        if s.rebuild.projection not in names:
            fail("faults.rebuild.projection", f"names {s.rebuild.projection!r}, not among {names}")
        if s.rebuild.mode == "shadow" and s.projection(s.rebuild.projection).partitions != 1:
            fail(
                "faults.rebuild.mode",
                "'shadow' needs partitions = 1 for that projection "
                "(a partitioned group rebuilds in place)",
            )
    if s.drift is not None:
        if s.drift.fix_at is not None and s.drift.fix_at < s.drift.start:
            fail("faults.drift.fix_at", f"must be >= start ({s.drift.start:g})")
        known = [e.event_type() for e in domain.events]
        if s.drift.event is not None and s.drift.event not in known:
            fail(
                "faults.drift.event",
                f"names {s.drift.event!r}, not an event of domain {domain.name!r}; its "
                f"events: {', '.join(known)}",
            )
    for i, slo in enumerate(s.slos):
        if slo.sli in ("projection_lag", "backlog") and slo.projection is None:
            fail(f"slo[{i}].projection", f"is required for sli = {slo.sli!r}: one of {names}")
        if slo.projection is not None and slo.projection not in names:
            fail(f"slo[{i}].projection", f"names {slo.projection!r}, not among {names}")
        if slo.sli in ("query_latency", "read_staleness") and s.reads is None:
            fail(f"slo[{i}].sli", f"{slo.sli!r} needs a [reads] section")
    if s.workload.arrivals.process == "trace" and not s.workload.arrivals.trace:
        fail("workload.arrivals.path", "holds no rows: want lines of time,command")
    parts = work(s, workload)
    total = math.fsum(n for _, n in parts)
    if not total <= MAX_WORK:
        key, most = parts[0]
        fail(
            key,
            f"asks for about {most:.3g} simulated happenings in {s.duration:g} s (all keys: "
            f"{total:.3g}); a run is refused past {MAX_WORK:.0e}, some 20 minutes of CPU: "
            "shorten scenario.duration or change this key",
        )
    return s


def _check_workload(s: Scenario, workload: Workload, fail: Any) -> None:
    kinds = [k.name for k in workload.kinds]
    w = s.workload
    for kind, weight in w.mix:
        if kind not in kinds:
            fail(f"workload.mix.{kind}", f"is not a command kind of the workload; kinds: {kinds}")
        if not weight >= 0:
            fail(f"workload.mix.{kind}", f"must be a number >= 0, got {weight!r}")
    mix = s.mix()
    if not mix or sum(weight for _, weight in mix) <= 0:
        fail("workload.mix", f"needs at least one positive weight among {', '.join(kinds)}")
    for _, kind in w.arrivals.trace:
        if kind not in kinds:
            fail("workload.arrivals.path", f"names kind {kind!r}; the workload's kinds: {kinds}")
    needs = probe(s.resolved_domain).needs_saga
    names = {p.name for p in s.projections}
    for kind, weight in mix:
        missing = [v for v in needs.get(kind, ()) if v not in names]
        if weight > 0 and missing:
            fail(
                f"workload.mix.{kind}",
                f"needs [projections.{missing[0]}] to carry {kind} commands out",
            )
    if w.population < workload.min_population:
        fail(
            f"workload.{workload.population}",
            f"must be a whole number >= {workload.min_population}, got {w.population}",
        )
    declared = dict(workload.params or {})
    for name, value in w.params:
        if name not in declared:
            fail(
                f"workload.{name}",
                f"is not a parameter of the workload; allowed keys in [workload]: "
                f"{', '.join(workload_keys(workload))}",
            )
        try:
            declared[name].check(name, value)
        except ConfigError as exc:
            fail(f"workload.{name}", f"must be {str(exc).split(': ', 1)[-1]}, got {value!r}")


def workload_keys(workload: Workload) -> list[str]:
    """The keys [workload] takes for this domain: generic ones, population, parameters."""
    return sorted(
        ("arrivals", "mix", "keys", "zipf_s", workload.population, *(workload.params or {}))
    )


def _check_projection(p: ProjectionSpec, fail: Any) -> None:
    key = f"projections.{p.name}"
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
