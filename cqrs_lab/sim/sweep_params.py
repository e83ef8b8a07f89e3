"""Sweep parameters: a dotted key of a scenario and a value, checked as the scenario file's
key is (:mod:`cqrs_lab.sim.scenario_keys`), and the joblib backends a sweep can use.

>>> from cqrs_lab.sim import builtin_scenario
>>> apply_param(builtin_scenario(), "projections.balances.consumers", 2).projections[0].consumers
2
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

from cqrs_lab.errors import ConfigError, DomainError, ScenarioError
from cqrs_lab.sim.distributions import Dist
from cqrs_lab.sim.scenario import Scenario, WorkloadSpec
from cqrs_lab.sim.scenario_file import Section
from cqrs_lab.sim.scenario_keys import TABLES
from cqrs_lab.sim.scenario_parts import CrashSpec

__all__ = ["BACKENDS", "apply_param", "check_backend"]

_KEYS = (
    "use rate, duration, seed, commands.FIELD, workload.FIELD, workload.arrivals.FIELD, "
    "reads.FIELD, projections.NAME.FIELD or projections.NAME.crash.FIELD with a field of "
    "that section"
)

#: joblib backends a sweep can run on (dask and ray need their packages and a cluster)
BACKENDS = ("loky", "threading", "multiprocessing", "dask", "ray")


def apply_param(scenario: Scenario, key: str, value: Any) -> Scenario:
    """The scenario with the dotted parameter ``key`` set to ``value``, checked as the
    scenario file's key is (its type, bounds and choices: :mod:`cqrs_lab.sim.scenario_keys`),
    then the scenario as a whole. A number for a time (``commands.service``) sets the mean
    of the scenario's distribution, keeping its kind and cv.

    >>> from cqrs_lab.sim import builtin_scenario
    >>> apply_param(builtin_scenario(), "commands.handlers", 0)
    Traceback (most recent call last):
    ...
    cqrs_lab.errors.ConfigError: parameter 'commands.handlers' must be a whole number \
from 1 to 10000, got 0
    """
    parts = key.split(".")
    try:
        if key == "rate":
            return scenario.with_rate(_read(scenario, "workload.arrivals", key, value, path=""))
        if len(parts) == 1:
            return scenario.with_(**{key: _read(scenario, "scenario", key, value, path="")})
        head, name = ".".join(parts[:-1]), parts[-1]
        if head == "commands":
            v = _read(scenario, head, name, value, getattr(scenario.commands, name, None))
            return scenario.with_commands(**{name: v})
        if parts[0] == "projections" and len(parts) in (4, 5) and parts[2] == "crash":
            return _with_crash(scenario, parts, value)
        if parts[0] == "projections" and len(parts) == 3:
            p = scenario.projection(parts[1])
            v = _read(scenario, "projections.NAME", name, value, getattr(p, name, None), head)
            return scenario.with_projection(parts[1], **{name: v})
        if head == "workload":
            return scenario.with_(workload=_workload_with(scenario, name, value))
        if head == "workload.arrivals" and name != "path":
            w = scenario.workload
            arrivals = dataclasses.replace(w.arrivals, **{name: _read(scenario, head, name, value)})
            return scenario.with_(workload=dataclasses.replace(w, arrivals=arrivals))
        if head == "reads":
            if scenario.reads is None:
                raise ConfigError(f"parameter {key!r}: the scenario has no [reads] section")
            v = _read(scenario, head, name, value, getattr(scenario.reads, name, None))
            return scenario.with_(reads=dataclasses.replace(scenario.reads, **{name: v}))
    except ScenarioError as exc:  # name the parameter, not a file
        text = str(exc)
        if text.startswith(f"{_SOURCE}: "):  # the value itself
            raise ConfigError(text.replace(f"{_SOURCE}: ", "parameter ", 1)) from None
        raise ConfigError(  # the value is fine alone; the scenario with it is not
            f"parameter {key}={value!r} does not fit the rest of the scenario ({text}); "
            "choose values that fit, or sweep the other key too"
        ) from None
    except TypeError as exc:
        raise ConfigError(f"parameter {key!r}: {exc}; {_KEYS}") from None
    raise ConfigError(f"parameter {key!r}: {_KEYS}")


_SOURCE = "<parameter>"


def _read(
    scenario: Scenario,
    table: str,
    name: str,
    value: Any,
    current: Any = None,
    path: str | None = None,
) -> Any:
    """``value`` read as the scenario file's key ``table.name`` is (ScenarioError if not)."""
    t = Section({name: value}, table if path is None else path, _SOURCE)
    keys = {k.name: k for k in TABLES[table].keys if k.kind not in ("table", "list")}
    if table == "scenario":
        keys.pop("domain", None)  # a sweep compares variants of one system
    if name not in keys and table == "scenario":
        t.fail(name, f"names nothing a sweep can set; {_KEYS}")
    if name not in keys:
        t.fail(t.key(name), f"is not a field you can sweep; choose from {', '.join(keys)}")
    spec = keys[name]
    if spec.kind == "choice" and not spec.choices:  # a view of this scenario
        names = tuple(p.name for p in scenario.projections)
        spec = dataclasses.replace(spec, choices=names)
    zero_ok = scenario.workload.arrivals.process in ("onoff", "trace")
    if table == "workload.arrivals" and name == "rate" and zero_ok:
        spec = dataclasses.replace(spec, open_lo=False)
    if spec.kind == "time":
        if isinstance(value, bool) or not isinstance(value, int | float):
            t.fail(t.key(name), f"must be a time in seconds >= 0, got {value!r}")
        return _with_mean(current, t.dist(name, Dist.fixed(0.0)).mean)
    return t.read(spec)


def _with_crash(scenario: Scenario, parts: list[str], value: Any) -> Scenario:
    """``projections.NAME.crash.ttf`` (or ``.ttr``; a trailing ``.mean`` reads the same):
    the mean time, keeping the distribution's kind; crashes start if the view had none."""
    if len(parts) == 5 and parts[4] != "mean":
        raise ConfigError(
            f"parameter {'.'.join(parts)!r}: write projections.NAME.crash.ttf=SECONDS"
        )
    p = scenario.projection(parts[1])
    crash = p.crash or CrashSpec()
    name = parts[3]
    current = getattr(crash, name, None)
    v = _read(scenario, "projections.NAME.crash", name, value, current, ".".join(parts[:3]))
    return scenario.with_projection(parts[1], crash=dataclasses.replace(crash, **{name: v}))


def _with_mean(current: Any, mean: float) -> Dist:
    """``current`` (a Dist) with mean ``mean``: same kind and cv, samples scaled."""
    if not isinstance(current, Dist) or current.mean <= 0:
        return Dist.fixed(mean)
    scale = mean / current.mean
    return dataclasses.replace(
        current, mean=mean, samples=tuple(x * scale for x in current.samples)
    )


def _workload_with(scenario: Scenario, name: str, value: Any) -> WorkloadSpec:
    """[workload] with ``name`` set: a generic key, the population key or a domain parameter."""
    w = scenario.workload
    workload = scenario.resolved_domain.workload
    t = Section({name: value}, "workload", _SOURCE)
    if workload is not None and name == workload.population:
        lo = workload.min_population
        return dataclasses.replace(w, population=t.int_(name, lo, lo=lo))
    declared = dict(workload.params or {}) if workload is not None else {}
    if name in declared:
        try:
            checked = declared[name].check(name, value)
        except DomainError as exc:
            t.fail(t.key(name), f"must be {str(exc).split(': ', 1)[-1]}, got {value!r}")
        given = dict(w.params) | {name: checked}
        return dataclasses.replace(w, params=tuple(given.items()))
    return dataclasses.replace(w, **{name: _read(scenario, "workload", name, value)})


def check_backend(backend: str) -> None:
    """Refuse a joblib backend that is unknown, not installed, or (dask) has no cluster.

    >>> check_backend("spark")
    Traceback (most recent call last):
    ...
    cqrs_lab.errors.ConfigError: backend 'spark': choose one of loky, threading, \
multiprocessing, dask, ray
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError("backend 'ray': ray is not installed: pip install ray")
    if backend == "dask":
        if importlib.util.find_spec("distributed") is None:
            raise ConfigError(
                "backend 'dask': dask is not installed: pip install 'dask[distributed]'"
            )
        from distributed import get_client

        try:
            get_client()
        except ValueError:
            raise ConfigError(
                "backend 'dask': no Dask cluster to run on; start a scheduler and workers "
                "(`dask scheduler`, `dask worker ADDRESS`) and set "
                "DASK_SCHEDULER_ADDRESS=tcp://HOST:8786, or create a distributed.Client "
                "in the notebook first"
            ) from None
