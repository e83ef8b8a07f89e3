"""Reading the sections of a scenario TOML file strictly (see :mod:`cqrs_lab.sim.scenario_load`).

Each reader refuses unknown keys, wrong types and impossible values with a
:class:`~cqrs_lab.errors.ScenarioError` naming the file, the dotted key and what is allowed.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from cqrs_lab.core.workload import Workload
from cqrs_lab.errors import DomainError, ScenarioError
from cqrs_lab.sim.distributions import DIST_KINDS, MAX_CV, Dist
from cqrs_lab.sim.scenario_keys import TABLES, Key
from cqrs_lab.sim.scenario_parts import (
    ArrivalSpec,
    AutoscaleSpec,
    CommandSpec,
    CrashSpec,
    ProjectionSpec,
    RetrySpec,
    TransportSpec,
    WorkloadSpec,
)

__all__ = [
    "Section",
    "read_commands",
    "read_projection",
    "read_table",
    "read_workload",
    "strict_keys",
]


class Section:
    """One TOML table being read: typed getters that name the file and the dotted key."""

    def __init__(self, data: Any, path: str, source: str, base: Path | None = None) -> None:
        #: ``base``: the scenario file's folder, against which file names are resolved
        self.source, self.path, self.base = source, path, base
        if not isinstance(data, Mapping):
            self.fail(path, f"must be a table ({{...}} or [{path}]), got {type(data).__name__}")
        self.data = dict(data)
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ScenarioError(f"{self.source}: {key!r} {problem}")

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str) -> Any:
        self.used.add(name)
        return self.data[name]

    def num(
        self,
        name: str,
        default: float,
        *,
        lo: float = 0.0,
        hi: float = math.inf,
        open_lo: bool = False,
    ) -> float:
        if name not in self.data:
            return default
        v = self.raw(name)
        lo_txt = f"> {lo:g}" if open_lo else f">= {lo:g}"
        allowed = lo_txt + (f" and <= {hi:g}" if hi != math.inf else "")
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.fail(self.key(name), f"must be a number {allowed}, got {v!r}")
        bad = (v <= lo if open_lo else v < lo) or v > hi or not math.isfinite(v)
        if bad:
            self.fail(self.key(name), f"must be a number {allowed}, got {v!r}")
        return float(v)

    def opt_num(self, name: str, *, lo: float = 0.0, open_lo: bool = True) -> float | None:
        return self.num(name, 0.0, lo=lo, open_lo=open_lo) if name in self.data else None

    def int_(self, name: str, default: int, *, lo: int = 0, hi: int = 10**9) -> int:
        if name not in self.data:
            return default
        v = self.raw(name)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.fail(self.key(name), f"must be a whole number from {lo} to {hi}, got {v!r}")
        return int(v)

    def str_(self, name: str, default: str, choices: tuple[str, ...] | None = None) -> str:
        if name not in self.data:
            return default
        v = self.raw(name)
        if not isinstance(v, str) or (choices is not None and v not in choices):
            allowed = f"one of {', '.join(choices)}" if choices else "a string"
            self.fail(self.key(name), f"must be {allowed}, got {v!r}")
        return str(v)

    def read(self, key: Key, choices: tuple[str, ...] | None = None) -> Any:
        """The value of ``key`` by its declared kind, bounds and default (absent: default)."""
        name, d = key.name, key.default
        if isinstance(d, str) and d.startswith("<"):  # decided by the caller when absent
            d = None
        if key.kind == "number":
            if d is None:
                return self.opt_num(name, lo=key.lo, open_lo=key.open_lo)
            return self.num(name, d, lo=key.lo, hi=key.hi, open_lo=key.open_lo)
        if key.kind == "whole":
            hi = int(key.hi) if key.hi != math.inf else 10**9
            if d is None:
                return self.int_(name, 0, lo=int(key.lo), hi=hi) if self.has(name) else None
            return self.int_(name, d, lo=int(key.lo), hi=hi)
        if key.kind == "choice":
            return self.str_(name, d or "", choices or key.choices) or None
        if key.kind == "text":
            return self.str_(name, d) if d is not None else self.str_(name, "") or None
        if key.kind == "time":
            return self.dist(name, d)
        raise ScenarioError(f"{self.source}: {self.key(name)!r} is a {key.kind}")

    def sub(self, name: str) -> Section | None:
        if name not in self.data:
            return None
        return Section(self.raw(name), self.key(name), self.source, self.base)

    def dist(self, name: str, default: Dist) -> Dist:
        if name not in self.data:
            return default
        v = self.raw(name)
        key = self.key(name)
        if isinstance(v, int | float) and not isinstance(v, bool):
            if not (math.isfinite(v) and v >= 0):
                self.fail(key, f"must be a time in seconds >= 0, got {v!r}")
            return Dist.fixed(float(v))
        if not isinstance(v, Mapping):
            self.fail(
                key,
                f"must be a time in seconds >= 0 or a distribution table "
                f"({{ dist = one of {', '.join(DIST_KINDS)}, ... }}), got {v!r}",
            )
        t = Section(v, key, self.source, self.base)
        strict_keys(t, TABLES["<distribution>"].names)
        kind = t.str_("dist", "", DIST_KINDS)
        if not kind:
            self.fail(key, f"needs dist = one of {', '.join(DIST_KINDS)} (or a bare number)")
        if kind == "empirical" and t.has("file"):
            if t.has("samples"):
                self.fail(key, "gives both samples and file: give one")
            return Dist.empirical(_read_samples(t))
        if kind == "empirical":
            samples = t.raw("samples") if t.has("samples") else None
            if (
                not isinstance(samples, list)
                or not samples
                or not all(
                    isinstance(x, int | float) and not isinstance(x, bool) and x >= 0
                    for x in samples
                )
            ):
                self.fail(
                    f"{key}.samples",
                    "must be a non-empty list of times in seconds >= 0 (or give file = "
                    '"times.csv": one time a line, relative to the scenario file)',
                )
            return Dist.empirical(samples)
        mean = t.num("mean", t.num("value", 0.0)) if kind == "deterministic" else t.num("mean", -1)
        if mean < 0:
            self.fail(f"{key}.mean", "is required: the mean time in seconds (>= 0)")
        if kind in ("lognormal", "gamma") and not t.has("cv"):
            self.fail(
                f"{key}.cv",
                f"is required for dist = {kind!r}: the coefficient of variation "
                "(standard deviation / mean, >= 0), e.g. cv = 0.5",
            )
        cv = t.num("cv", 1.0, hi=MAX_CV) if kind in ("lognormal", "gamma") else 1.0
        return Dist(kind, mean, cv)


def strict_keys(t: Section, allowed: tuple[str, ...]) -> None:
    extra = sorted(set(t.data) - set(allowed))
    if extra:
        where = f"[{t.path}]" if t.path else "the top level"
        raise ScenarioError(
            f"{t.source}: unknown key {t.key(extra[0])!r}; allowed keys in {where}: "
            f"{', '.join(sorted(allowed))}"
        )


def read_table(
    t: Section, path: str, *, skip: tuple[str, ...] = (), adjust: dict[str, Key] | None = None
) -> dict[str, Any]:
    """Check ``t``'s keys against the table at ``path`` (plus ``skip``, read by the caller)
    and read its plain keys by their specs (``adjust`` replaces a spec for this read)."""
    table = TABLES[path]
    strict_keys(t, table.names + skip)
    swap = adjust or {}
    return {
        k.name: t.read(swap.get(k.name, k)) for k in table.keys if k.kind not in ("table", "list")
    }


def _arrivals(t: Section, base: Path | None) -> ArrivalSpec:
    table = TABLES["workload.arrivals"]
    process = t.str_("process", "poisson", table.key("process").choices)
    adjust = {}
    if process in ("onoff", "trace"):  # a rate of 0 is allowed: all off, or the trace's own
        adjust["rate"] = dataclasses.replace(table.key("rate"), open_lo=False)
    v = read_table(t, "workload.arrivals", adjust=adjust)
    del v["path"]
    trace = _read_trace(t, base) if process == "trace" else ()
    return ArrivalSpec(**v, trace=trace)


def _read_trace(t: Section, base: Path | None) -> tuple[tuple[float, str], ...]:
    name = t.str_("path", "")
    if not name:
        t.fail(t.key("path"), "is required for process = 'trace': a CSV with time,command")
    path = Path(name) if base is None or Path(name).is_absolute() else base / name
    rows: list[tuple[float, str]] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.reader(fh)):
                if not row or (i == 0 and not _is_float(row[0])):
                    continue  # header or blank line
                kind = row[1].strip() if len(row) > 1 else ""
                at = float(row[0]) if _is_float(row[0]) else math.nan
                if not (math.isfinite(at) and at >= 0) or not kind:
                    t.fail(
                        t.key("path"),
                        f"{path} line {i + 1}: want a time in seconds (a finite number >= 0) "
                        f"and a command kind, got {row!r}",
                    )
                rows.append((float(row[0]), kind))
    except OSError as exc:
        t.fail(t.key("path"), f"cannot be read ({exc}); give a CSV path relative to the scenario")
    except (UnicodeDecodeError, csv.Error) as exc:
        t.fail(t.key("path"), f"{path} is not a CSV of UTF-8 text ({exc}); give time,command rows")
    rows.sort(key=lambda r: r[0])
    return tuple(rows)


def _read_samples(t: Section) -> list[float]:
    """An empirical distribution's ``file``: a CSV of times in seconds, the first column of
    each line (a header line allowed), resolved against the scenario file's folder."""
    key = t.key("file")
    name = t.str_("file", "")
    if not name:
        t.fail(key, 'must name a CSV of times in seconds, e.g. file = "service.csv"')
    path = Path(name) if t.base is None or Path(name).is_absolute() else t.base / name
    samples: list[float] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.reader(fh)):
                if not row or not row[0].strip() or (i == 0 and not _is_float(row[0])):
                    continue  # blank line or header
                if not _is_float(row[0]) or not (
                    math.isfinite(float(row[0])) and float(row[0]) >= 0
                ):
                    t.fail(key, f"{path} line {i + 1}: want a time in seconds >= 0, got {row!r}")
                samples.append(float(row[0]))
    except OSError as exc:
        t.fail(key, f"cannot be read ({exc}); give a CSV path relative to the scenario file")
    except (UnicodeDecodeError, csv.Error) as exc:
        t.fail(key, f"{path} is not a CSV of UTF-8 text ({exc}); give one time in seconds a line")
    if not samples:
        t.fail(key, f"{path} holds no time: want one time in seconds >= 0 a line")
    return samples


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_workload(t: Section, base: Path | None, workload: Workload) -> WorkloadSpec:
    """[workload]: generic keys, the population key and the domain workload's parameters."""
    params = tuple(workload.params or {})
    population = workload.population
    v = read_table(t, "workload", skip=(population, *params))
    kinds = tuple(k.name for k in workload.kinds)
    arr = t.sub("arrivals")
    mix: tuple[tuple[str, float], ...] = ()
    m = t.sub("mix")
    if m is not None:
        strict_keys(m, kinds)
        mix = tuple((k, m.num(k, 0.0)) for k in kinds if m.has(k))
        if sum(w for _, w in mix) <= 0:
            t.fail(t.key("mix"), f"needs at least one positive weight among {', '.join(kinds)}")
    given: list[tuple[str, int | float]] = []
    declared = dict(workload.params or {})
    for name in params:
        if t.has(name):
            value = t.raw(name)
            try:
                given.append((name, declared[name].check(name, value)))
            except DomainError as exc:  # name the file and the key
                t.fail(t.key(name), f"must be {str(exc).split(': ', 1)[-1]}, got {value!r}")
    return WorkloadSpec(
        arrivals=_arrivals(arr, base) if arr is not None else ArrivalSpec(),
        mix=mix,
        population=t.int_(population, workload.default_population, lo=workload.min_population),
        params=tuple(given),
        keys=v["keys"],
        zipf_s=v["zipf_s"],
    )


def read_commands(t: Section) -> CommandSpec:
    return CommandSpec(**read_table(t, "commands"))


def read_projection(name: str, t: Section) -> ProjectionSpec:
    v = read_table(t, "projections.NAME")
    crash = auto = transport = None
    if (c := t.sub("crash")) is not None:
        crash = CrashSpec(**read_table(c, "projections.NAME.crash"))
    if (a := t.sub("autoscale")) is not None:
        auto = AutoscaleSpec(**read_table(a, "projections.NAME.autoscale"))
    retry = RetrySpec()
    if (r := t.sub("retry")) is not None:
        retry = RetrySpec(**read_table(r, "projections.NAME.retry"))
    if (tr := t.sub("transport")) is not None:
        f = read_table(tr, "projections.NAME.transport")
        lo, hi = f.pop("delay_min"), f.pop("delay_max")
        if hi < lo:
            tr.fail(tr.key("delay_max"), f"must be >= delay_min ({lo:g}), got {hi:g}")
        transport = TransportSpec(**f, delay_seconds=(lo, hi))
    return ProjectionSpec(
        name=name, **v, crash=crash, autoscale=auto, retry=retry, transport=transport
    )
