"""Per-stage timings of the served engine, for load tests and calibrating the digital twin.

``cqrs-lab serve --stage-timings`` passes a :class:`StageTimings` to
:func:`~cqrs_lab.http.create_app`; the parts of the app that do the work report to it, with
``time.perf_counter``:

- ``command``: the engine handling one command (the gateway, on the driver's writer);
- ``query``: the engine answering one query (:class:`~cqrs_lab.http.reads.Reads`);
- ``projection``: one subscription pump by the driver, with how many events it dealt with;
- ``writer``: one batch of the driver's writer (its commands, the commit, the answers'
  futures), with how many commands it held;
- ``pump``: one tick of the driver's pump that did work (every subscription's steps, the
  transaction around them, waking the readers);
- ``commit`` and ``pump-wait``: the part of a ``writer`` batch and of a ``pump`` tick that
  was not the loop thread's CPU (``time.thread_time``): waiting for the database's round
  trips, during which the loop runs nothing else;
- ``request``: the server-side time of each request, by route (as ``/metrics`` sees it),
  with the request's ``X-Request-Id`` when it sent one (the ``ref`` column: the load
  generator's id of it, :mod:`cqrs_lab.load.answer_delay`);
- ``transport``: each read of a connection's bytes by the HTTP protocol (parsing them and
  starting the request's task), a turn of the loop before the request's own
  (:mod:`cqrs_lab.http.protocol`);
- ``lag``: per applied event, the time from its append to its application (the
  subscription recorder of the app);
- ``gc``: each pause of the cyclic garbage collector, by generation (``gen0``..``gen2``),
  with how many objects it freed (the ``serve`` command registers :meth:`StageTimings.
  collector_callback` in ``gc.callbacks``: the loop runs nothing else meanwhile).

Without the option the app gets None and none of this runs. The totals are exported on
``/metrics`` as ``cqrs_lab_stage_seconds`` and ``cqrs_lab_stage_items`` (sum and count per
stage, so exact means); ``--stages-csv PATH`` also writes every raw sample when the server
stops (columns :data:`STAGE_COLUMNS` and ``ref``; ``at`` is ``time.monotonic()``, as the
load generator's clock).

>>> stages = StageTimings()
>>> stages.add("command", "Deposit", 0.002)
>>> stages.add("projection", "balances", 0.003, events=3)
>>> stages.totals["projection"]
[0.003, 3.0]
>>> [m.samples[0].value for m in stages.collect()]
[0.002, 1.0]
"""

from __future__ import annotations

import csv
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from cqrs_lab.core import Envelope

__all__ = ["STAGES", "STAGE_COLUMNS", "StageTimings"]

#: columns of the raw stage samples file (then ``ref``, which files written before it lack)
STAGE_COLUMNS = ("stage", "name", "at", "seconds", "events")
#: the longest ``ref`` kept (a client's header, cut)
REF_CHARS = 64
#: the stages with running totals (``lag`` is sampled per event only)
STAGES = ("command", "query", "projection", "request", "writer", "pump", "transport")


class StageTimings(Collector):
    """Raw samples (the latest ``limit``: a server that replayed a long log at start-up
    keeps those of its load, not the replay's) and running totals per stage; a Prometheus
    collector."""

    def __init__(self, limit: int = 500_000) -> None:
        self.samples: deque[tuple[str, str, float, float, int, str]] = deque(maxlen=limit)
        self.totals: dict[str, list[float]] = {s: [0.0, 0.0] for s in STAGES}

    def add(
        self,
        stage: str,
        name: str,
        seconds: float,
        events: int = 1,
        ref: str = "",
        at: float | None = None,
    ) -> None:
        """One sample: ``seconds`` spent in ``stage`` on ``name`` (``events`` items; ``ref``:
        the request's id from its client, if any), ending ``at`` (``time.monotonic()``; by
        default now)."""
        tot = self.totals.setdefault(stage, [0.0, 0.0])
        tot[0] += seconds
        tot[1] += events if stage in ("projection", "writer") else 1
        end = time.monotonic() if at is None else at
        self.samples.append((stage, name, end, seconds, events, ref[:REF_CHARS]))

    def collector_callback(self) -> Callable[[str, dict[str, int]], None]:
        """A ``gc.callbacks`` entry adding a ``gc`` sample per collection (see the module)."""
        started = [0.0]

        def observe(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            elif started[0]:
                gen = f"gen{info.get('generation', 0)}"
                self.add("gc", gen, time.perf_counter() - started[0], info.get("collected", 0))

        return observe

    def lag(self, sub: str, env: Envelope, now: float) -> None:
        """``env`` applied by ``sub`` at engine time ``now``: its append-to-apply lag."""
        self.samples.append(("lag", sub, time.monotonic(), now - env.recorded_at, env.position, ""))

    def collect(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "cqrs_lab_stage_seconds",
            "seconds spent per stage (cqrs-lab serve --stage-timings)",
            labels=["stage"],
        )
        count = CounterMetricFamily(
            "cqrs_lab_stage_items",
            "items per stage (commands, queries, events, requests)",
            labels=["stage"],
        )
        for stage, (secs, n) in sorted(self.totals.items()):
            total.add_metric([stage], secs)
            count.add_metric([stage], n)
        yield total
        yield count

    def write_csv(self, path: str | Path) -> Path:
        """Write every raw sample (``at`` is ``time.monotonic()``, as the load generator's)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow((*STAGE_COLUMNS, "ref"))
            for stage, name, at, secs, n, ref in self.samples:
                w.writerow((stage, name, f"{at:.6f}", f"{secs:.9f}", n, ref))
        return out
