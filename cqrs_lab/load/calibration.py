"""The twin's fitted parameters (:class:`Calibration`), and one calibration pooled from
several runs (:func:`pool`). What is read from a run to fit them (its steady window, the
server's append-to-apply lags and CPU utilisation) and from the domain (its workload, the
view compared by default): :mod:`cqrs_lab.load.calibration_inputs`.

A calibration is of one domain (``domain``, a reference as ``cqrs-lab serve --domain`` takes
it) and compares the lag of one of its views (``view``: by default the domain's primary
view, :func:`~cqrs_lab.load.calibration_inputs.primary_view`). The scenario it writes names
that domain, its population and parameters, and a ``[projections.NAME]`` for every view
with a cost per event.

:mod:`cqrs_lab.load.twin` fits a calibration, :mod:`cqrs_lab.load.prediction` simulates it,
:mod:`cqrs_lab.load.compare` sets predictions against measurements; imports go that way only.

>>> cal = Calibration(command_samples=(0.001, 0.002), base_latency_s=(0.001, 0.002),
...                   base_lag_s=(0.0002,), per_event={"balances": 1e-5}, mix={"deposit": 1.0})
>>> cal.command_mean, cal.service_mean(100.0), cal.view
(0.0015, 0.0015, 'balances')
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cqrs_lab.core import load_domain
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.calibration_inputs import primary_view, quantiles, scenario_head
from cqrs_lab.load.results import DEFAULT_DOMAIN
from cqrs_lab.sim import Scenario, load_scenario
from cqrs_lab.sim.scenario_load import parse_scenario

__all__ = ["Calibration", "pool"]


@dataclass(frozen=True)
class Calibration:
    """Fitted parameters of the twin, every time in seconds: the command service samples,
    the unloaded client-side command latencies (``base_latency_s``) and the unloaded
    append-to-apply lags of ``view`` (``base_lag_s``)."""

    command_samples: tuple[float, ...]
    base_latency_s: tuple[float, ...]
    base_lag_s: tuple[float, ...]
    per_event: dict[str, float]
    mix: dict[str, float]
    #: keys the load touched (the workload's population: accounts, products, ...)
    keys: int = 200
    zipf_s: float = 1.1
    queue_limit: int = 1024
    source: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    #: how the server's busy CPU grows with the command rate (``busy ~ rate ** cpu_exponent``;
    #: 1: a constant CPU per command) and how the unloaded latency and lag change with it
    #: (``~ rate ** latency_exponent``, ``lag_exponent``; 0: not at all), fitted over the
    #: calibration levels; ``anchor_rate`` is the command rate of the first level, where
    #: the samples above were measured
    cpu_exponent: float = 1.0
    #: the server's CPU seconds per request of any kind at ``anchor_rate`` (0: unknown)
    request_cpu: float = 0.0
    latency_exponent: float = 0.0
    lag_exponent: float = 0.0
    anchor_rate: float = 0.0
    #: the domain served (a reference: "cqrs_lab.domains.inventory", "pkg.mod:obj")
    domain: str = DEFAULT_DOMAIN
    #: the workload parameters the run used (the rest: the workload's defaults)
    params: dict[str, Any] = field(default_factory=dict)
    #: the view whose append-to-apply lag is calibrated (``base_lag_s``), predicted and
    #: compared ("": the domain's :func:`primary_view`)
    view: str = ""

    def __post_init__(self) -> None:
        if not self.command_samples or min(self.command_samples) < 0:
            raise ConfigError("command_samples: measured service times in seconds (>= 0)")
        if not self.base_latency_s or not self.base_lag_s:
            raise ConfigError("base_latency_s, base_lag_s: give unloaded measurements (s)")
        if not self.per_event:
            raise ConfigError("per_event: give at least one projection's cost per event")
        d = load_domain(self.domain)
        views = d.view_names
        unknown = [n for n in self.per_event if n not in views]
        if unknown:
            raise ConfigError(
                f"per_event: {unknown[0]!r} is not a view of domain {d.name!r}; "
                f"its views: {', '.join(views)}"
            )
        if not self.view:
            object.__setattr__(self, "view", primary_view(d))
        if self.view not in self.per_event:
            raise ConfigError(
                f"view={self.view!r}: the view whose lag is compared needs a cost in "
                f"per_event (it has {', '.join(sorted(self.per_event))})"
            )

    @property
    def command_mean(self) -> float:
        return float(np.mean(self.command_samples))

    def service_mean(self, rate: float) -> float:
        """The server's CPU seconds per command at ``rate`` commands/s (the fitted curve).

        The served engine's CPU per command falls as the load grows (commits batched,
        event-loop work shared by more requests per turn): ``busy(rate) / rate`` with busy
        CPU a power of the rate through the calibration levels.
        """
        if self.cpu_exponent == 1.0 or self.anchor_rate <= 0 or rate <= 0:
            return self.command_mean
        return float(self.command_mean * (rate / self.anchor_rate) ** (self.cpu_exponent - 1.0))

    def unloaded_scale(self, rate: float, lag: bool = False) -> float:
        """Factor on the unloaded latency (or lag) at ``rate``: an idle server and client
        wake up for each request, a busy one is already running (caches warm, no sleep in
        the event loop), so the part of latency that is not queueing shrinks with load."""
        k = self.lag_exponent if lag else self.latency_exponent
        if k == 0.0 or self.anchor_rate <= 0 or rate <= 0:
            return 1.0
        return float((rate / self.anchor_rate) ** k)

    @property
    def capacity(self) -> float:
        """Commands per second at which the one folded server's CPU is used up."""
        mean = self.command_mean
        if mean <= 0:
            return math.inf
        if self.cpu_exponent == 1.0 or self.anchor_rate <= 0:
            return 1.0 / mean
        # busy(rate) = mean * anchor_rate * (rate / anchor_rate) ** k = 1
        return float(self.anchor_rate * (mean * self.anchor_rate) ** (-1.0 / self.cpu_exponent))

    def service_samples(self, rate: float) -> list[float]:
        """The command service times (s) scaled to load ``rate`` (commands/s)."""
        scale = self.service_mean(rate) / self.command_mean if self.command_mean > 0 else 1.0
        return [float(f"{s * scale:.7g}") for s in self.command_samples]

    def toml(
        self, rate: float, duration: float, seed: int = 1, samples_file: str | None = None
    ) -> str:
        """A scenario file for load ``rate`` (commands/s) over ``duration`` seconds; the
        service samples inline, or in ``samples_file`` (a CSV beside the scenario, written
        by :meth:`write`)."""
        if samples_file is None:
            samples = ", ".join(f"{s:.7g}" for s in self.service_samples(rate))
            service = f"samples = [{samples}]"
        else:
            service = f"file = {json.dumps(samples_file)}"
        projections = []
        for name in sorted(self.per_event):
            projections.append(
                f'[projections.{name}]\ndelivery = "effectively-once"\npartitions = 1\n'
                f"consumers = 1\nbatch_size = 256\nper_event = {self.per_event[name]:.7g}\n"
                f"per_batch = 0.0\n"
            )
        return (
            f"# Calibrated by cqrs-lab twin from {self.source or 'a load test'}.\n"
            f"# Command service: mean {self.service_mean(rate) * 1e3:.4f} ms at {rate:g}"
            f" commands/s (server CPU per command, all work folded;\n"
            f"# busy CPU ~ rate ** {self.cpu_exponent:.3f} through the calibration levels);\n"
            f"# unloaded command latency p50 {np.median(self.base_latency_s) * 1e3:.3f} ms"
            f" (added to the simulated wait).\n\n"
            f"# Lag compared: view {self.view!r}.\n\n"
            + scenario_head(
                self.domain, self.params, self.keys, self.zipf_s, self.mix, rate, duration, seed
            )
            + f"[commands]\nhandlers = 1\nqueue_limit = {self.queue_limit}\n"
            f'admission = "reject"\nservice = {{ dist = "empirical", {service} }}\n\n'
            + "\n".join(projections)
        )

    def scenario(self, rate: float, duration: float, seed: int = 1) -> Scenario:
        return parse_scenario(self.toml(rate, duration, seed), source="<twin>")

    def describe(self) -> str:
        """One line: what was calibrated, in ms and commands/s."""
        return (
            f"calibrated from {self.source}: command service mean {self.command_mean * 1e3:.3f}"
            f" ms at {self.anchor_rate or float('nan'):.0f} commands/s (the server's CPU per "
            f"command; busy CPU ~ rate ** {self.cpu_exponent:.2f}, unloaded latency ~ rate ** "
            f"{self.latency_exponent:.2f}; capacity {self.capacity:.0f} commands/s), "
            f"unloaded latency p50 {np.median(self.base_latency_s) * 1e3:.2f} ms"
        )

    def write(self, path: str | Path, rate: float, duration: float) -> Path:
        """Write the scenario file and, beside it, ``<name>-service.csv``: the command
        service samples in seconds (column ``service_s``), which the scenario names with
        ``file =``. It loads back with :func:`cqrs_lab.sim.load_scenario`."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        csv_path = p.with_name(f"{p.stem}-service.csv")
        rows = "".join(f"{s:.7g}\n" for s in self.service_samples(rate))
        csv_path.write_text("service_s\n" + rows, encoding="utf-8")
        p.write_text(self.toml(rate, duration, samples_file=csv_path.name), encoding="utf-8")
        load_scenario(p)
        return p


def pool(cals: Sequence[Calibration], max_samples: int = 2000) -> Calibration:
    """One calibration from several runs at the same light load (repeats): samples pooled,
    per-event costs and the mix averaged. Pooling repeats averages out the noise of any one
    run (a machine shared with other work makes single runs' tails differ a lot).

    >>> a = Calibration((0.001,), (0.001,), (0.0002,), {"balances": 1e-5}, {"deposit": 1.0})
    >>> b = Calibration((0.003,), (0.003,), (0.0004,), {"balances": 3e-5}, {"deposit": 1.0})
    >>> p = pool([a, b], max_samples=2)
    >>> p.command_samples, p.base_latency_s, p.per_event
    ((0.001, 0.003), (0.001, 0.003), {'balances': 2e-05})
    """
    if not cals:
        raise ConfigError("pool: give at least one calibration")
    if len(cals) == 1:
        return cals[0]
    first = cals[0]
    other = [c for c in cals if (c.domain, c.view) != (first.domain, first.view)]
    if other:
        raise ConfigError(
            f"pool: calibrations of domain {first.domain!r} (lag of {first.view!r}) and "
            f"{other[0].domain!r} (lag of {other[0].view!r}); pool runs of one domain and view"
        )

    def merged(field: str) -> tuple[float, ...]:
        values = np.concatenate([np.asarray(getattr(c, field), dtype=float) for c in cals])
        return quantiles(values, min(max_samples, len(values)))

    def mean_note(key: str) -> float:
        return float(np.mean([c.notes.get(key, math.nan) for c in cals]))

    names = sorted(set().union(*(c.per_event for c in cals)))
    kinds = sorted(set().union(*(c.mix for c in cals)))
    return Calibration(
        merged("command_samples"),
        merged("base_latency_s"),
        merged("base_lag_s"),
        {n: float(np.mean([c.per_event.get(n, 0.0) for c in cals])) for n in names},
        {k: float(np.mean([c.mix.get(k, 0.0) for c in cals])) for k in kinds},
        first.keys,
        first.zipf_s,
        first.queue_limit,
        source=", ".join(c.source for c in cals),
        notes={
            "pooled": len(cals),
            "busy_cpu": mean_note("busy_cpu"),
            "command_rate": mean_note("command_rate"),
            "cpu_per_request_s": mean_note("cpu_per_request_s"),
        },
        anchor_rate=float(np.mean([c.anchor_rate for c in cals])),
        request_cpu=float(np.mean([c.request_cpu for c in cals])),
        domain=first.domain,
        params=first.params,
        view=first.view,
    )
