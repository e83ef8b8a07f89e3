"""The HTTP deployment with per-stage timings, for load tests and calibration.

:func:`instrument` wraps an app built by :func:`cqrs_lab.http.create_app` (nothing in
``cqrs_lab.http`` changes) so that it measures, with ``time.perf_counter``:

- ``command``: the engine handling one command (``engine.dispatch``, on the writer);
- ``query``: the engine answering one query (``engine.ask``);
- ``projection``: one subscription step, with how many events it dealt with;
- ``request``: the server-side time of each request, by route (as ``/metrics`` sees it);
- ``lag``: per applied event, the time from its append to its application.

The figures are exported on the app's own ``/metrics`` as ``cqrs_lab_stage_seconds``
(sum and count per stage, so exact means) and, with ``--stages FILE``, every raw sample is
written as CSV when the server stops. ``python -m cqrs_lab.load.server --port 8000`` runs it.

>>> from cqrs_lab.http import ServerConfig, build_engine, create_app
>>> app = create_app(build_engine(ServerConfig()).engine, ServerConfig())
>>> stages = instrument(app)
>>> sorted(stages.totals)
['command', 'projection', 'query', 'request']
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["STAGE_COLUMNS", "StageTimings", "instrument", "main"]

#: columns of the raw stage samples file
STAGE_COLUMNS = ("stage", "name", "at", "seconds", "events")


class StageTimings(Collector):
    """Raw samples (bounded) and running totals per stage; a Prometheus collector."""

    def __init__(self, limit: int = 500_000) -> None:
        self.limit = limit
        self.samples: list[tuple[str, str, float, float, int]] = []
        self.totals: dict[str, list[float]] = {
            s: [0.0, 0.0] for s in ("command", "query", "projection", "request")
        }
        self.events = 0

    def add(self, stage: str, name: str, seconds: float, events: int = 1) -> None:
        tot = self.totals.setdefault(stage, [0.0, 0.0])
        tot[0] += seconds
        tot[1] += events if stage == "projection" else 1
        if len(self.samples) < self.limit:
            self.samples.append((stage, name, time.monotonic(), seconds, events))

    def collect(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "cqrs_lab_stage_seconds",
            "seconds spent per stage (instrumented server)",
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
            w.writerow(STAGE_COLUMNS)
            for stage, name, at, secs, n in self.samples:
                w.writerow((stage, name, f"{at:.6f}", f"{secs:.9f}", n))
        return out


class _LagRecorder:
    """Delegates to the app's subscription recorder and samples append-to-apply lag."""

    def __init__(self, inner: Any, stages: StageTimings, clock: Any) -> None:
        self.inner, self.stages, self.clock = inner, stages, clock

    def delivered(self, sub: str, env: Any, now: float) -> None:
        if self.inner is not None:
            self.inner.delivered(sub, env, now)

    def applied(self, sub: str, env: Any, now: float) -> None:
        st = self.stages
        if len(st.samples) < st.limit:
            st.samples.append(("lag", sub, time.monotonic(), now - env.recorded_at, env.position))
        if self.inner is not None:
            self.inner.applied(sub, env, now)

    def skipped(self, sub: str, env: Any, now: float, reason: str) -> None:
        if self.inner is not None:
            self.inner.skipped(sub, env, now, reason)

    def rolled_back(self, sub: str, envs: list[Any], now: float) -> None:
        if self.inner is not None:
            self.inner.rolled_back(sub, envs, now)

    def crashed(self, sub: str, now: float, lost: list[Any]) -> None:
        if self.inner is not None:
            self.inner.crashed(sub, now, lost)


def instrument(app: Any, stages: StageTimings | None = None) -> StageTimings:
    """Wrap the engine and metrics of ``app`` (a LabApp) to time each stage."""
    st = stages if stages is not None else StageTimings()
    engine = app.state.engine
    clock = time.perf_counter
    dispatch = engine.dispatch

    def timed_dispatch(command: Any, **options: Any) -> Any:
        t0 = clock()
        try:
            return dispatch(command, **options)
        finally:
            st.add("command", type(command).__name__, clock() - t0)

    ask = engine.ask

    def timed_ask(query: Any, **options: Any) -> Any:
        t0 = clock()
        try:
            return ask(query, **options)
        finally:
            st.add("query", type(query).__name__, clock() - t0)

    engine.dispatch, engine.ask = timed_dispatch, timed_ask
    for name, sub in engine.subscriptions.items():
        sub.step = _step(sub.step, st, name)
        sub.recorder = _LagRecorder(sub.recorder, st, engine.clock)
    metrics = app.metrics
    observe = metrics.observe

    def timed_observe(method: str, route: str, status: int, seconds: float) -> None:
        st.add("request", f"{method} {route} {status}", seconds)
        observe(method, route, status, seconds)

    metrics.observe = timed_observe
    metrics.registry.register(st)
    return st


def _step(step: Callable[..., int], st: StageTimings, name: str) -> Callable[..., int]:
    clock = time.perf_counter

    def timed(max_events: int | None = None) -> int:
        t0 = clock()
        n = step(max_events)
        if n:
            st.add("projection", name, clock() - t0, n)
        return n

    return timed


def main(argv: list[str] | None = None) -> int:
    """Serve the bank (like ``cqrs-lab serve``) with stage timings; write them on exit."""
    from cqrs_lab.core import DELIVERY_POLICIES
    from cqrs_lab.http import ServerConfig, create_app_from_config
    from cqrs_lab.http.cli import run_uvicorn

    p = argparse.ArgumentParser(prog="python -m cqrs_lab.load.server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--delivery", choices=DELIVERY_POLICIES, default="effectively-once")
    p.add_argument("--store", default="memory")
    p.add_argument("--admin-token", default=None)
    p.add_argument("--queue-size", type=int, default=1024)
    p.add_argument(
        "--restart-after",
        type=float,
        default=1.0,
        help="seconds before a crashed consumer is restarted (negative: never)",
    )
    p.add_argument("--stages", default=None, help="write raw stage samples to this CSV on exit")
    args = p.parse_args(argv)
    config = ServerConfig(
        delivery=args.delivery,
        store=args.store,
        queue_size=args.queue_size,
        restart_after=args.restart_after if args.restart_after >= 0 else None,
        admin_token=ServerConfig.admin_token_from_env(args.admin_token),
    )
    app = create_app_from_config(config)
    stages = instrument(app)
    run_uvicorn(app, args.host, args.port, log_level="warning", graceful_seconds=5)
    if args.stages:
        stages.write_csv(args.stages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
