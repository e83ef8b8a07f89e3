"""Reading the sections of a scenario TOML file strictly (see :mod:`cqrs_lab.sim.scenario_load`).

Each reader refuses unknown keys, wrong types and impossible values with a
:class:`~cqrs_lab.errors.ScenarioError` naming the file, the dotted key and what is allowed.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from cqrs_lab.core import DELIVERY_POLICIES
from cqrs_lab.errors import ScenarioError
from cqrs_lab.sim.distributions import DIST_KINDS, Dist
from cqrs_lab.sim.scenario import (
    ArrivalSpec,
    AutoscaleSpec,
    CommandSpec,
    CrashSpec,
    ProjectionSpec,
    RetrySpec,
    TransportSpec,
    WorkloadSpec,
)

__all__ = ["Section", "read_commands", "read_projection", "read_workload", "strict_keys"]

_PROCESSES = ("poisson", "constant", "onoff", "diurnal", "step", "spike", "trace")
_KINDS = ("deposit", "withdraw", "transfer")


class Section:
    """One TOML table being read: typed getters that name the file and the dotted key."""

    def __init__(self, data: Any, path: str, source: str) -> None:
        self.source, self.path = source, path
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

    def sub(self, name: str) -> Section | None:
        return Section(self.raw(name), self.key(name), self.source) if name in self.data else None

    def dist(self, name: str, default: Dist) -> Dist:
        if name not in self.data:
            return default
        v = self.raw(name)
        key = self.key(name)
        if isinstance(v, int | float) and not isinstance(v, bool):
            if not (math.isfinite(v) and v >= 0):
                self.fail(key, f"must be a time in seconds >= 0, got {v!r}")
            return Dist.fixed(float(v))
        t = Section(v, key, self.source)
        strict_keys(t, ("dist", "mean", "value", "cv", "samples"))
        kind = t.str_("dist", "", DIST_KINDS)
        if not kind:
            self.fail(key, f"needs dist = one of {', '.join(DIST_KINDS)} (or a bare number)")
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
                self.fail(f"{key}.samples", "must be a non-empty list of times in seconds >= 0")
            return Dist.empirical(samples)
        mean = t.num("mean", t.num("value", 0.0)) if kind == "deterministic" else t.num("mean", -1)
        if mean < 0:
            self.fail(f"{key}.mean", "is required: the mean time in seconds (>= 0)")
        cv = t.num("cv", 1.0) if kind in ("lognormal", "gamma") else 1.0
        return Dist(kind, mean, cv)


def strict_keys(t: Section, allowed: tuple[str, ...]) -> None:
    extra = sorted(set(t.data) - set(allowed))
    if extra:
        where = f"[{t.path}]" if t.path else "the top level"
        raise ScenarioError(
            f"{t.source}: unknown key {t.key(extra[0])!r}; allowed keys in {where}: "
            f"{', '.join(sorted(allowed))}"
        )


def _arrivals(t: Section, base: Path | None) -> ArrivalSpec:
    strict_keys(
        t,
        (
            "process",
            "rate",
            "off_rate",
            "on",
            "off",
            "amplitude",
            "period",
            "at",
            "length",
            "to_rate",
            "path",
            "speed",
        ),
    )
    process = t.str_("process", "poisson", _PROCESSES)
    trace: tuple[tuple[float, str], ...] = ()
    if process == "trace":
        trace = _read_trace(t, base)
    return ArrivalSpec(
        process=process,
        rate=t.num("rate", 100.0, open_lo=process not in ("onoff", "trace")),
        off_rate=t.num("off_rate", 0.0),
        on=t.num("on", 1.0, open_lo=True),
        off=t.num("off", 1.0),
        amplitude=t.num("amplitude", 0.5, hi=1.0),
        period=t.num("period", 60.0, open_lo=True),
        at=t.num("at", 0.0),
        length=t.num("length", 0.0),
        to_rate=t.num("to_rate", 0.0),
        speed=t.num("speed", 1.0, open_lo=True),
        trace=trace,
    )


def _read_trace(t: Section, base: Path | None) -> tuple[tuple[float, str], ...]:
    name = t.str_("path", "")
    if not name:
        t.fail(t.key("path"), "is required for process = 'trace': a CSV with time,command")
    path = Path(name) if base is None or Path(name).is_absolute() else base / name
    rows: list[tuple[float, str]] = []
    try:
        with path.open(newline="") as fh:
            for i, row in enumerate(csv.reader(fh)):
                if not row or (i == 0 and not _is_float(row[0])):
                    continue  # header or blank line
                kind = row[1].strip() if len(row) > 1 else "deposit"
                if not _is_float(row[0]) or float(row[0]) < 0 or kind not in _KINDS:
                    t.fail(
                        t.key("path"),
                        f"{path} line {i + 1}: want time >= 0 and a command "
                        f"kind from {', '.join(_KINDS)}, got {row!r}",
                    )
                rows.append((float(row[0]), kind))
    except OSError as exc:
        t.fail(t.key("path"), f"cannot be read ({exc}); give a CSV path relative to the scenario")
    rows.sort(key=lambda r: r[0])
    return tuple(rows)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_workload(t: Section, base: Path | None) -> WorkloadSpec:
    strict_keys(
        t, ("arrivals", "mix", "accounts", "opening_balance", "max_amount", "keys", "zipf_s")
    )
    arr = t.sub("arrivals")
    mix: tuple[tuple[str, float], ...] = WorkloadSpec().mix
    m = t.sub("mix")
    if m is not None:
        strict_keys(m, _KINDS)
        mix = tuple((k, m.num(k, 0.0)) for k in _KINDS if m.has(k))
        if sum(w for _, w in mix) <= 0:
            t.fail(t.key("mix"), f"needs at least one positive weight among {', '.join(_KINDS)}")
    return WorkloadSpec(
        arrivals=_arrivals(arr, base) if arr is not None else ArrivalSpec(),
        mix=mix,
        accounts=t.int_("accounts", 1000, lo=2),
        opening_balance=t.int_("opening_balance", 1000),
        max_amount=t.int_("max_amount", 100, lo=1),
        keys=t.str_("keys", "uniform", ("uniform", "zipf")),
        zipf_s=t.num("zipf_s", 1.1, open_lo=True),
    )


def read_commands(t: Section) -> CommandSpec:
    strict_keys(
        t, ("handlers", "service", "queue_limit", "admission", "rate_limit", "burst", "max_retries")
    )
    return CommandSpec(
        handlers=t.int_("handlers", 4, lo=1, hi=10_000),
        service=t.dist("service", CommandSpec().service),
        queue_limit=t.int_("queue_limit", 0, lo=1) if t.has("queue_limit") else None,
        admission=t.str_("admission", "reject", ("reject", "block", "shed-oldest")),
        rate_limit=t.opt_num("rate_limit"),
        burst=t.int_("burst", 1, lo=1),
        max_retries=t.int_("max_retries", 5),
    )


def read_projection(name: str, t: Section) -> ProjectionSpec:
    strict_keys(
        t,
        (
            "delivery",
            "partitions",
            "consumers",
            "batch_size",
            "per_event",
            "per_batch",
            "checkpoint_interval",
            "linger",
            "session_timeout",
            "crash",
            "autoscale",
            "transient_errors",
            "retry",
            "transport",
        ),
    )
    d = ProjectionSpec()
    crash = auto = None
    if (c := t.sub("crash")) is not None:
        strict_keys(c, ("ttf", "ttr"))
        crash = CrashSpec(c.dist("ttf", CrashSpec().ttf), c.dist("ttr", CrashSpec().ttr))
    if (a := t.sub("autoscale")) is not None:
        strict_keys(
            a,
            (
                "metric",
                "scale_out_above",
                "scale_in_below",
                "min",
                "max",
                "cooldown",
                "interval",
                "startup_delay",
            ),
        )
        auto = AutoscaleSpec(
            metric=a.str_("metric", "backlog", ("backlog", "lag")),
            scale_out_above=a.num("scale_out_above", 1000.0),
            scale_in_below=a.num("scale_in_below", 100.0),
            min=a.int_("min", 1, lo=1),
            max=a.int_("max", 8, lo=1),
            cooldown=a.num("cooldown", 30.0),
            interval=a.num("interval", 5.0, open_lo=True),
            startup_delay=a.num("startup_delay", 10.0),
        )
    retry = RetrySpec()
    if (r := t.sub("retry")) is not None:
        strict_keys(r, ("max_attempts", "base", "factor", "max_delay", "jitter"))
        retry = RetrySpec(
            r.int_("max_attempts", 5, lo=1),
            r.num("base", 0.1),
            r.num("factor", 2.0, lo=1.0),
            r.num("max_delay", 10.0),
            r.str_("jitter", "full", ("full", "equal", "none")),
        )
    transport = None
    if (tr := t.sub("transport")) is not None:
        strict_keys(
            tr,
            (
                "drop",
                "duplicate",
                "reorder",
                "delay",
                "delay_min",
                "delay_max",
                "redelivery_timeout",
            ),
        )
        lo, hi = tr.num("delay_min", 0.01), tr.num("delay_max", 0.1)
        if hi < lo:
            tr.fail(tr.key("delay_max"), f"must be >= delay_min ({lo:g}), got {hi:g}")
        transport = TransportSpec(
            drop=tr.num("drop", 0.0, hi=1.0),
            duplicate=tr.num("duplicate", 0.0, hi=1.0),
            reorder=tr.num("reorder", 0.0, hi=1.0),
            delay=tr.num("delay", 0.0, hi=1.0),
            delay_seconds=(lo, hi),
            redelivery_timeout=tr.num("redelivery_timeout", 1.0),
        )
    return ProjectionSpec(
        name=name,
        delivery=t.str_("delivery", d.delivery, DELIVERY_POLICIES),
        partitions=t.int_("partitions", d.partitions, lo=1, hi=4096),
        consumers=t.int_("consumers", d.consumers, lo=1, hi=4096),
        batch_size=t.int_("batch_size", d.batch_size, lo=1),
        per_event=t.dist("per_event", d.per_event),
        per_batch=t.dist("per_batch", d.per_batch),
        checkpoint_interval=t.opt_num("checkpoint_interval"),
        linger=t.num("linger", 0.0),
        session_timeout=t.opt_num("session_timeout", open_lo=False),
        crash=crash,
        autoscale=auto,
        transient_errors=t.num("transient_errors", 0.0, hi=1.0),
        retry=retry,
        transport=transport,
    )
