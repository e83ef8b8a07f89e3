"""Prometheus metrics: request latency by route template, command outcomes, the engine.

Each app gets its own :class:`prometheus_client.CollectorRegistry` (nothing global). Engine
figures (projection position, lag, backlog, dead letters, failing consumers, handler
errors, command outcomes) are read at scrape time by :class:`EngineCollector`, so serving
costs nothing per event.

>>> from prometheus_client import generate_latest
>>> from cqrs_lab.core import Engine, install
>>> from cqrs_lab.domains.inventory import domain
>>> engine = Engine(seed=1)
>>> _ = install(engine, domain)
>>> metrics = HttpMetrics(engine, lambda: 0)
>>> metrics.observe("GET", "/livez", 200, 0.001)
>>> text = generate_latest(metrics.registry).decode()
>>> 'http_request_duration_seconds_count{method="GET",route="/livez",status="200"} 1.0' in text
True
>>> 'cqrs_projection_failing{projection="stock"} 0.0' in text
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cqrs_lab.core import Engine

__all__ = ["EngineCollector", "HttpMetrics"]


_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class EngineCollector(Collector):
    """Reads the engine's subscriptions and counters when Prometheus scrapes."""

    def __init__(
        self,
        engine: Engine,
        shed: Callable[[], int],
        failing: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.engine = engine
        self.shed = shed
        self.failing = failing if failing is not None else dict

    def collect(self) -> Iterator[Metric]:
        gauges = {
            "position": GaugeMetricFamily(
                "cqrs_projection_position", "last global position dealt with", labels=["projection"]
            ),
            "backlog": GaugeMetricFamily(
                "cqrs_projection_backlog", "events not yet dealt with", labels=["projection"]
            ),
            "lag_seconds": GaugeMetricFamily(
                "cqrs_projection_lag_seconds",
                "age of the oldest event not dealt with",
                labels=["projection"],
            ),
            "dead_letters": GaugeMetricFamily(
                "cqrs_dead_letters", "events parked in the dead-letter store", labels=["projection"]
            ),
            "crashed": GaugeMetricFamily(
                "cqrs_projection_crashed", "1 while the consumer is down", labels=["projection"]
            ),
            "open_instances": GaugeMetricFamily(
                "cqrs_saga_open_instances",
                "saga instances started and not ended (0 for a projection)",
                labels=["projection"],
            ),
        }
        counters = {
            "lost": CounterMetricFamily(
                "cqrs_projection_lost_events",
                "events declared lost (at-most-once: taken, never applied)",
                labels=["projection"],
            ),
            "duplicates_applied": CounterMetricFamily(
                "cqrs_projection_duplicates_applied",
                "events applied again (at-least-once redeliveries)",
                labels=["projection"],
            ),
        }
        failing = GaugeMetricFamily(
            "cqrs_projection_failing",
            "1 while the handler keeps raising: retrying an event, or its last event parked",
            labels=["projection"],
        )
        errors = CounterMetricFamily(
            "cqrs_projection_errors",
            "times the projection's handler raised (retried or parked)",
            labels=["projection"],
        )
        now_failing = self.failing()
        for stats in self.engine.stats():
            label = [stats["name"]]
            for key, gauge in gauges.items():
                gauge.add_metric(label, float(stats[key]))
            for key, total in counters.items():
                total.add_metric(label, float(stats[key]))
            failing.add_metric(label, 1.0 if stats["name"] in now_failing else 0.0)
            errors.add_metric(label, float(stats["retries"] + stats["dead_lettered"]))
        yield from gauges.values()
        yield from counters.values()
        yield failing
        yield errors
        head = GaugeMetricFamily("cqrs_store_head_position", "global position of the last event")
        head.add_metric([], float(self.engine.store.head_position))
        yield head
        outcomes = CounterMetricFamily(
            "cqrs_engine_commands", "commands handled by the engine by outcome", labels=["outcome"]
        )
        for (name, labels), counter in sorted(self.engine.metrics.counters.items()):
            if name == "commands_total":
                outcomes.add_metric([dict(labels).get("outcome", "")], float(counter.value))
        yield outcomes
        shed = CounterMetricFamily("cqrs_commands_shed", "commands refused with 429 (queue full)")
        shed.add_metric([], float(self.shed()))
        yield shed


class HttpMetrics:
    """The app's registry: request latency histogram, command outcome counter, the engine's
    figures (``failing``: projection -> reason, for ``cqrs_projection_failing``)."""

    def __init__(
        self,
        engine: Engine,
        shed: Callable[[], int],
        failing: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "http_request_duration_seconds",
            "request latency by route template",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.commands = Counter(
            "http_commands",
            "commands received over HTTP by command and outcome",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.registry.register(EngineCollector(engine, shed, failing))
        self._children: dict[tuple[str, str, int], Any] = {}
        self._outcomes: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.latency.labels(method, route, str(status))
        child.observe(seconds)

    def outcome(self, command: str, outcome: str) -> None:
        key = (command, outcome)
        child = self._outcomes.get(key)
        if child is None:
            child = self._outcomes[key] = self.commands.labels(command, outcome)
        child.inc()
