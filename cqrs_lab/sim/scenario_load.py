"""Load a scenario from TOML (a file, a string or a dict) and check it as a whole.

Top-level tables: ``[scenario]`` (name, description, duration, seed, bucket, domain),
``[workload]`` (with ``[workload.arrivals]`` and ``[workload.mix]``), ``[commands]``,
``[projections.NAME]`` (NAME one of the domain's views), ``[reads]``, ``[faults]`` (poison,
``[faults.drift]``, ``[faults.rebuild]``), ``[[slo]]`` and ``[[alerts]]``. Every key, its
unit, default and allowed values: :mod:`cqrs_lab.sim.scenario_keys` (rendered as
``docs/scenario-reference.md``).

>>> parse_scenario({"scenario": {"duration": -1}}, source="x.toml")
Traceback (most recent call last):
...
cqrs_lab.errors.ScenarioError: x.toml: 'scenario.duration' must be a number > 0, got -1
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cqrs_lab.errors import ScenarioError
from cqrs_lab.sim.scenario import (
    DEFAULT_DOMAIN,
    AlertRule,
    DriftSpec,
    ProjectionSpec,
    ReadSpec,
    RebuildSpec,
    Scenario,
    ServerSpec,
    SloSpec,
    check_scenario,
    resolve_domain,
    workload_of,
)
from cqrs_lab.sim.scenario_file import (
    Section,
    read_commands,
    read_projection,
    read_table,
    read_workload,
    strict_keys,
)
from cqrs_lab.sim.scenario_keys import TABLES

__all__ = ["check_scenario", "load_scenario", "parse_scenario"]


def load_scenario(path: str | Path) -> Scenario:
    """Read and check the scenario file at ``path`` (relative trace paths resolve beside it).

    A file must say how commands arrive: an empty file, or one without
    ``[workload.arrivals]``, is refused rather than run on defaults (a string or mapping
    given to :func:`parse_scenario` may leave out any table).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read the scenario file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{p}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "a scenario file is TOML, saved as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from None
    if not data:
        raise ScenarioError(
            f"{p}: no tables: a scenario file says at least how commands arrive "
            "([workload.arrivals] process = 'poisson', rate = 100.0); every key: "
            "`cqrs-lab scenario-reference`"
        )
    scenario = parse_scenario(data, source=str(p), base=p.parent)  # every key checked first
    if "arrivals" not in data.get("workload", {}):
        raise ScenarioError(
            f"{p}: no [workload.arrivals] table: say how commands arrive, e.g. "
            "[workload.arrivals] process = 'poisson', rate = 100.0 (commands per second)"
        )
    return scenario


def parse_scenario(
    data: str | Mapping[str, Any], *, source: str = "<scenario>", base: Path | None = None
) -> Scenario:
    """Build a :class:`Scenario` from TOML text or an already-parsed mapping."""
    if isinstance(data, str):
        try:
            data = tomllib.loads(data)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    top = Section(data, "", source, base)
    strict_keys(top, TABLES[""].names)
    sc = top.sub("scenario") or Section({}, "scenario", source)
    head = read_table(sc, "scenario")
    ref = sc.str_("domain", DEFAULT_DOMAIN)
    domain = resolve_domain(ref, source)
    workload = workload_of(domain, source)
    views = domain.view_names
    default_name = Path(source).stem if source != "<scenario>" else "scenario"
    wl, cm, pr = top.sub("workload"), top.sub("commands"), top.sub("projections")
    projections = [ProjectionSpec(name=views[0])]
    if pr is not None:
        strict_keys(pr, views)
        projections = [
            read_projection(n, Section(pr.raw(n), pr.key(n), source, base))
            for n in views
            if pr.has(n)
        ]
    readable = tuple(r.view for r in workload.reads)
    reads = _reads(rd, readable) if (rd := top.sub("reads")) is not None else None
    server = None
    if (sv := top.sub("server")) is not None:
        server = ServerSpec(**read_table(sv, "server"))
    poison: tuple[float, ...] = ()
    drift = rebuild = None
    if (fl := top.sub("faults")) is not None:
        strict_keys(fl, TABLES["faults"].names)
        if fl.has("poison"):
            times = fl.raw("poison")
            if not isinstance(times, list) or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and x >= 0 for x in times
            ):
                fl.fail(fl.key("poison"), f"must be a list of times in seconds >= 0, got {times!r}")
            poison = tuple(sorted(float(x) for x in times))
        if (d := fl.sub("drift")) is not None:
            v = read_table(d, "faults.drift")
            drift = DriftSpec(**{**v, "event": d.str_("event", "") or None})
        if (r := fl.sub("rebuild")) is not None:
            v = read_table(r, "faults.rebuild", adjust=_choice(TABLES["faults.rebuild"], views))
            rebuild = RebuildSpec(**{**v, "projection": v["projection"] or views[0]})
    scenario = Scenario(
        name=sc.str_("name", default_name),
        description=head["description"],
        duration=head["duration"],
        seed=head["seed"],
        # the default bucket (1 s) no wider than a shorter run, as --duration does; a bucket
        # written in the file is the user's and is checked as written
        bucket=head["bucket"] if sc.has("bucket") else min(head["bucket"], head["duration"]),
        domain=ref,
        workload=read_workload(wl, base, workload)
        if wl is not None
        else read_workload(Section({}, "workload", source), base, workload),
        commands=read_commands(cm) if cm is not None else Scenario().commands,
        projections=tuple(projections),
        reads=reads,
        server=server,
        poison=poison,
        drift=drift,
        rebuild=rebuild,
        slos=tuple(_slos(top, views)),
        alerts=_alerts(top),
        source=source,
    )
    return check_scenario(scenario)


def _choice(table: Any, choices: tuple[str, ...], name: str = "projection") -> dict[str, Any]:
    """Adjust the choice key ``name`` of ``table`` to the domain's ``choices``."""
    return {name: dataclasses.replace(table.key(name), choices=choices)}


def _reads(t: Section, readable: tuple[str, ...]) -> ReadSpec:
    v = read_table(t, "reads", adjust=_choice(TABLES["reads"], readable))
    return ReadSpec(**{**v, "projection": v["projection"] or readable[0]})


def _slos(top: Section, views: tuple[str, ...]) -> list[SloSpec]:
    if not top.has("slo"):
        return []
    items = top.raw("slo")
    if not isinstance(items, list):
        top.fail(
            "slo", "must be an array of tables: [[slo]] name = ..., sli = ..., threshold = ..."
        )
    out = []
    table = TABLES["slo"]
    for i, item in enumerate(items):
        t = Section(item, f"slo[{i}]", top.source)
        v = read_table(t, "slo", adjust=_choice(table, views))
        sli = v["sli"]
        if not sli:
            t.fail(t.key("sli"), f"is required: one of {', '.join(table.key('sli').choices)}")
        if not t.has("threshold") and sli != "error_rate":
            t.fail(t.key("threshold"), "is required (seconds, or events for backlog)")
        out.append(SloSpec(**{**v, "name": t.str_("name", f"{sli}-{i}")}))
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
        rule = AlertRule(**read_table(t, "alerts"))
        if rule.short_window > rule.long_window:
            t.fail(t.key("short_window"), f"must be <= long_window ({rule.long_window:g})")
        rules.append(rule)
    return tuple(rules)
