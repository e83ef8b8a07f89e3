"""A load test's one-row summary (data: seconds, ``_s``; rates ``_per_s``) and its display
(milliseconds, every label with its unit).

Rates are over the span of the sends (``load_span_s``, first to last; Locust's start-up
and the population's setup make it shorter than ``--duration``). The open model's
``--rate`` counts user tasks started per second; the summary turns it
into what was aimed at, ``offered_commands_per_s`` and ``offered_requests_per_s`` (see
:func:`cqrs_lab.load.generator.per_task`). ``generator_bound`` says whether Locust, not
the server, limited the run, and ``generator_bound_why`` why
(:func:`cqrs_lab.load.generator.generator_bound`). Requests turned down are counted in the
lab's words: ``refused`` (409, the domain said no), ``conflict`` (lost an optimistic
concurrency race), ``shed`` (429/503) and other ``client_errors`` (4xx).

>>> print(format_summary(pd.DataFrame([{"command_latency_p99_s": 0.0123,
...     "throughput_per_s": 57.9, "requests": 12, "generator_bound": False}])))
command latency p99 (ms)  12.30
throughput (commands/s)   57.90
requests                     12
generator-bound              no
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.generator import generator_bound, per_task, waiting_share

if TYPE_CHECKING:
    from cqrs_lab.load.results import LoadResult

__all__ = [
    "cpu_rate",
    "display_summaries",
    "format_summary",
    "generator_cores",
    "strict_failures",
    "summarise",
]

_PCT = ("p50", "p90", "p95", "p99", "max", "mean")


def _seconds(values_s: Any, name: str, keys: tuple[str, ...] = _PCT) -> dict[str, float]:
    """``{name}_{p50..}_s``: percentiles of raw samples in seconds."""
    arr = np.asarray(values_s, dtype=float)
    arr = arr[~np.isnan(arr)]
    out = {}
    for k in keys:
        if not len(arr):
            v = float("nan")
        elif k == "max":
            v = float(arr.max())
        elif k == "mean":
            v = float(arr.mean())
        else:
            v = float(np.percentile(arr, float(k[1:])))
        out[f"{name}_{k}_s"] = v
    return out


def cpu_rate(path: Path, t0: float, lo: float, hi: float, column: str) -> float:
    """CPU seconds per second of ``column`` (``server_cpu_s`` or ``generator_cpu_s``) in
    the run folder's ``cpu.csv`` between ``lo`` and ``hi`` seconds after ``t0`` (NaN when
    fewer than two samples fall inside)."""
    file = path / "cpu.csv"
    if not file.exists():
        return math.nan
    try:
        cpu = pd.read_csv(file).dropna(subset=["t", column])
        t = cpu["t"].to_numpy(dtype=float) - t0
        c = cpu[column].to_numpy(dtype=float)
    except (ValueError, KeyError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ConfigError(
            f"{file}: not the CPU samples a load test writes (t and {column} columns: "
            f"{type(exc).__name__}: {str(exc)[:120]}); run the load test again"
        ) from None
    inside = (t >= lo) & (t <= hi)
    if inside.sum() < 2:
        return math.nan
    tt, cc = t[inside], c[inside]
    return float((cc[-1] - cc[0]) / (tt[-1] - tt[0]))


def generator_cores(result: LoadResult, lo: float, hi: float) -> float:
    """Cores all Locust processes used between ``lo`` and ``hi`` seconds after the first
    send (``cpu.csv``: their start-up is not counted), else over the whole run."""
    cores = cpu_rate(result.path, result.t0, lo, hi, "generator_cpu_s") if hi > lo else math.nan
    if math.isnan(cores):
        total = result.run.get("generator_cpu_s")
        span = float(result.requests["t"].max()) if len(result.requests) else 0.0
        return float(total) / span if total is not None and span > 0 else math.nan
    return cores


def _outcomes(requests: pd.DataFrame) -> dict[str, int]:
    """Requests turned down, in the lab's words (:func:`~cqrs_lab.load.requests_table.outcome`):
    ``refused`` by the domain's rules, lost a ``conflict``, ``shed`` (429/503), and other
    ``client_errors`` (4xx)."""
    counts = requests["outcome"].value_counts() if len(requests) else pd.Series(dtype=int)
    names = {"refused": "refused", "conflict": "conflict", "shed": "shed"}
    out = {key: int(counts.get(word, 0)) for key, word in names.items()}
    out["client_errors"] = int(counts.get("client error", 0))
    return out


def summarise(result: LoadResult) -> pd.DataFrame:
    """The one-row summary of ``result`` (see the module docstring)."""
    r, run = result.requests, result.run
    opts = run.get("options", {}) or {}
    asked = float(opts.get("duration") or 0.0)
    span = float(r["t"].max()) if len(r) > 1 else 0.0
    # rates over the span of the sends (Locust's start-up and the population's setup eat
    # into --duration), else over the duration asked for
    window = span if span > 0 else (asked or 1.0)
    cmd, got = r[r["method"] == "POST"], r[r["method"] == "GET"]  # commands, reads
    ryw_violations = len(result.check["read-your-writes"].violations) if result.history else 0
    st = result.staleness
    plain = st[~st["token"]] if len(st) else st
    rate = opts.get("rate")
    classes = opts.get("classes") or ("WriterUser", "ReaderUser", "SessionUser")
    cmd_per_task, req_per_task = per_task(classes)
    aimed = float(rate) * cmd_per_task if rate else float("nan")
    sent = len(cmd) / window
    late = _seconds(r["lateness_s"], "generator_lateness", ("p50", "p95", "max"))
    gen_cpu_s = run.get("generator_cpu_s")
    gen_cpu = generator_cores(result, 0.0, span)
    processes = int(opts.get("processes") or 1)
    users = int(run.get("users") or 1)
    waiting = waiting_share(len(r) / window, float(r["latency_s"].mean()), users) if len(r) else 0.0
    typical = float(cmd["latency_s"].median()) if len(cmd) else math.nan
    why = generator_bound(
        late["generator_lateness_p95_s"], sent, aimed, gen_cpu, processes, window,
        busy_share=waiting, latency_p50_s=typical,
    )  # fmt: skip
    server_cpu_s = run.get("server_cpu_s")
    row: dict[str, Any] = {
        "domain": result.domain,
        "model": run.get("model", ""),
        "users": run.get("users"),
        "duration_s": asked or window,
        "load_span_s": span,
        "offered_commands_per_s": aimed,
        "offered_requests_per_s": float(rate) * req_per_task if rate else float("nan"),
        "requests": len(r),
        "ok": int(r["ok"].sum()),
        "requests_per_s": len(r) / window,
        "commands": len(cmd),
        "sent_commands_per_s": sent,
        "commands_ok": int(cmd["ok"].sum()),
        "command_kinds_ok": int(cmd[cmd["ok"]]["name"].nunique()),
        "throughput_per_s": float(cmd["ok"].sum()) / window,
        **_outcomes(r),
        "status_5xx": int((r["status"] >= 500).sum()),
        "conn_errors": int((r["status"] == 0).sum()),
        **_seconds(cmd[cmd["ok"]]["latency_s"], "command_latency"),
        **_seconds(got[got["ok"]]["latency_s"], "read_latency"),
        **late,
        "generator_cpu_s": gen_cpu_s,
        "generator_cpu": gen_cpu,
        "generator_bound": bool(why),
        "generator_bound_why": why,
        "server_cpu_s": server_cpu_s,
        "server_cpu": float(server_cpu_s) / window if server_cpu_s is not None else math.nan,
        **_cpu_limit(run.get("server_cpu_limit")),
        "ryw_violations": ryw_violations,
        "plain_reads": len(plain),
        "plain_missed_own_write": int((~plain["saw_write"]).sum()) if len(plain) else 0,
        **{f"audit_{k}": v for k, v in result.lost.items()},
        "server_command_s": result.server_means.get("command", float("nan")),
        "server_event_s": result.server_means.get("projection", float("nan")),
    }
    return pd.DataFrame([row])


def _cpu_limit(limit: dict[str, Any] | None) -> dict[str, float]:
    """``--server-cpus``: the limit (cores) and the share of the CFS periods the server had
    work in that it was throttled in ({} when the server ran without a limit)."""
    if not limit:
        return {}
    periods = int(limit.get("periods") or 0)
    share = int(limit.get("throttled_periods") or 0) / periods if periods else math.nan
    return {"server_cpu_limit": float(limit["cores"]), "server_cpu_throttled": share}


def strict_failures(summary: pd.DataFrame) -> list[str]:
    """Why ``loadtest --strict`` fails this run ([] when it passes): 5xx answers,
    read-your-writes violations, lost writes, or a generator-bound run (Locust, not the
    server, limited it, so the load was not what was asked for).

    >>> strict_failures(pd.DataFrame([{"status_5xx": 0, "ryw_violations": 0, "audit_lost": 0,
    ...     "generator_bound": True, "generator_bound_why": "sends late"}]))
    ['generator-bound (sends late): lower --rate or add --processes']
    """
    s = summary.iloc[0]
    out = []
    for key, what in (
        ("status_5xx", "answers were 5xx"),
        ("ryw_violations", "read-your-writes violations"),
        ("audit_lost", "acknowledged writes lost"),
    ):
        n = s.get(key, 0)
        if n and not (isinstance(n, float) and math.isnan(n)):
            out.append(f"{int(n)} {what}")
    if bool(s.get("generator_bound", False)):
        why = s.get("generator_bound_why") or "the generator limited the run"
        out.append(f"generator-bound ({why}): lower --rate or add --processes")
    return out


#: display labels of the rates (what each counts)
_RATES = {
    "offered_commands_per_s": "offered (commands/s)",
    "offered_requests_per_s": "offered (requests/s)",
    "requests_per_s": "requests sent (requests/s)",
    "sent_commands_per_s": "commands sent (commands/s)",
    "throughput_per_s": "throughput (commands/s)",
}
#: CPU seconds stay seconds; cores are named
_OTHER = {
    "generator_cpu_s": "generator CPU (s)",
    "server_cpu_s": "server CPU (s)",
    "duration_s": "duration asked (s)",
    "load_span_s": "first to last send (s)",
    "generator_cpu": "generator CPU (cores)",
    "server_cpu": "server CPU (cores)",
    "server_cpu_limit": "server CPU limit (cores)",
    "server_cpu_throttled": "server throttled (share of periods)",
    "generator_bound": "generator-bound",
    "status_5xx": "answered 5xx (requests)",
    "conn_errors": "no answer (requests)",
    "refused": "refused by the domain (requests)",
    "conflict": "lost a concurrency race (requests)",
    "shed": "shed, 429/503 (requests)",
    "client_errors": "other client errors, 4xx (requests)",
    "generator_bound_why": "generator-bound because",
}


def _label(key: str) -> tuple[str, float]:
    """(display label, factor): ``x_s`` -> ``x (ms)`` times 1000, rates by what they count."""
    if key in _RATES:
        return _RATES[key], 1.0
    if key in _OTHER:
        return _OTHER[key], 1.0
    if key.endswith("_s"):
        return key[:-2].replace("_", " ") + " (ms)", 1e3
    return key.replace("_", " "), 1.0


def _shown(summary: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, text) per figure of the summary's row, in display units."""
    lines = []
    for key, value in summary.iloc[0].to_dict().items():
        label, factor = _label(str(key))
        if key == "generator_bound_why" and not value:
            continue
        if isinstance(value, bool | np.bool_):
            text = "yes" if value else "no"
        elif isinstance(value, int | np.integer):
            text = str(int(value))
        elif isinstance(value, float | np.floating):
            text = "n/a" if math.isnan(float(value)) else f"{float(value) * factor:.2f}"
        elif value is None:
            text = "n/a"
        else:
            text = str(value)
        lines.append((label, text))
    return lines


def display_summaries(summaries: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Runs side by side for a notebook: one column per run, one row per figure, labelled
    with its unit (times in ms)."""
    columns = {name: dict(_shown(s)) for name, s in summaries.items()}
    return pd.DataFrame(columns)


def format_summary(summary: pd.DataFrame) -> str:
    """The summary's row as text: times in ms, rates with what they count, units in labels."""
    lines = _shown(summary)
    width = max(len(label) for label, _ in lines)
    tw = max(len(text) for _, text in lines)
    return "\n".join(f"{label:<{width}}  {text:>{tw}}" for label, text in lines)
