"""The server's own figures, read from its Prometheus ``/metrics`` exposition.

:func:`scrape` fetches the text; :func:`parse_metrics` turns it into rows
``(name, labels, value)``; :func:`stage_means` gives the mean seconds per stage: from the
instrumented server's ``cqrs_lab_stage_seconds`` when present, otherwise from the request
latency histogram's sum and count per route (any ``cqrs-lab serve`` exports those).

>>> text = 'cqrs_lab_stage_seconds_total{stage="command"} 0.5\\n'
>>> text += 'cqrs_lab_stage_items_total{stage="command"} 1000.0\\n'
>>> stage_means(parse_metrics(text))["command"]
0.0005
"""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from cqrs_lab.errors import ConfigError

__all__ = ["MetricRow", "parse_metrics", "scrape", "stage_means"]

MetricRow = tuple[str, dict[str, str], float]


def scrape(base_url: str, timeout: float = 5.0) -> str:
    """GET ``base_url/metrics`` (the server's Prometheus text)."""
    url = base_url.rstrip("/") + "/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return str(resp.read().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"host {base_url}: cannot read /metrics ({exc})") from None


def parse_metrics(text: str) -> list[MetricRow]:
    """Every sample of the exposition as ``(sample name, labels, value)``."""
    rows: list[MetricRow] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            rows.append((s.name, dict(s.labels), float(s.value)))
    return rows


def _by(rows: list[MetricRow], name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for n, labels, v in rows:
        if n == name and label in labels:
            out[labels[label]] = out.get(labels[label], 0.0) + v
    return out


def stage_means(rows: list[MetricRow]) -> dict[str, float]:
    """Mean seconds per stage (command, query, projection per event, request), or, for a
    server without stage timings, per ``METHOD route`` from the request histogram."""
    secs = _by(rows, "cqrs_lab_stage_seconds_total", "stage")
    items = _by(rows, "cqrs_lab_stage_items_total", "stage")
    if secs:
        return {k: secs[k] / items[k] for k in secs if items.get(k)}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for n, labels, v in rows:
        if n.startswith("http_request_duration_seconds_") and "route" in labels:
            key = f"{labels.get('method', '')} {labels['route']}"
            if n.endswith("_sum"):
                sums[key] = sums.get(key, 0.0) + v
            elif n.endswith("_count"):
                counts[key] = counts.get(key, 0.0) + v
    return {k: sums[k] / counts[k] for k in sums if counts.get(k)}


def gauges(rows: list[MetricRow], name: str) -> dict[str, Any]:
    """One gauge per ``projection`` label, e.g. ``cqrs_projection_lag_seconds``."""
    return _by(rows, name, "projection")
