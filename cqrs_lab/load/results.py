"""A load test's results folder as pandas tables, a summary and the history check.

:func:`load_results` reads a folder written by ``cqrs-lab loadtest`` (or any folder with a
``records/`` of ``requests-*.csv`` and ``history-*.jsonl``) into a :class:`LoadResult`:

- ``requests``: one row per request (``t`` seconds since the load started, exact
  ``latency_s``, ``status``, ``ok``, ``outcome``; see :mod:`cqrs_lab.load.requests_table`);
- ``latencies``: percentiles per request name (seconds), computed from the raw latencies;
- ``throughput``: per one-second bucket, requests sent, answered 2xx, errors, commands ok;
- ``errors``: counts per name, status and error text;
- ``staleness``: every read carrying or following a session's write: its token, the
  position read, whether it saw the write and how many positions it was behind
  (:mod:`cqrs_lab.load.staleness`);
- ``stages``: the server's raw stage timings, if the instrumented server ran;
  ``server_means``: mean seconds per stage read from its ``/metrics``;
- ``summary``: one row; ``check``: the run's verdict: requests were made, the session
  guarantees hold on the recorded history (by key), nothing acknowledged was lost or doubled.

Commands are the ``POST`` requests, reads the ``GET`` ones, whatever the domain.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> (folder / "records").mkdir()
>>> result = load_results(folder)
>>> result.check.ok, result.check["requests"].summary
(False, 'no request was recorded: the run proves nothing; see locust*.log')
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cqrs_lab.checks.history import Operation
from cqrs_lab.checks.report import CheckReport, CheckResult, Violation, verdict
from cqrs_lab.checks.session import check_history
from cqrs_lab.display import frame_html
from cqrs_lab.errors import ConfigError
from cqrs_lab.http.stages import STAGE_COLUMNS
from cqrs_lab.load.audit import (
    acknowledged_writes,
    history_counts,
    lost_writes,
    read_history,
    written_keys,
)
from cqrs_lab.load.metrics import parse_metrics, stage_means
from cqrs_lab.load.requests_table import commands, percentiles, read_requests
from cqrs_lab.load.staleness import session_staleness

__all__ = [
    "DEFAULT_DOMAIN",
    "LoadResult",
    "acknowledged_writes",
    "commands",
    "load_results",
    "percentiles",
    "written_keys",
]


#: the domain of a results folder that records none (runs from before any domain was served)
DEFAULT_DOMAIN = "cqrs_lab.domains.bank"


@dataclass(eq=False)
class LoadResult:
    """The tables of one load test (see the module docstring)."""

    path: Path
    run: dict[str, Any]
    requests: pd.DataFrame
    history: list[Operation]
    stages: pd.DataFrame
    t0: float = 0.0  # monotonic time of the first request (``t`` columns count from here)

    def __repr__(self) -> str:
        return f"LoadResult(path={str(self.path)!r}, requests={len(self.requests)})"

    @property
    def domain(self) -> str:
        """The domain the run served (``run.json``; the bank for folders that name none)."""
        opts = self.run.get("options") or {}
        return str(self.run.get("domain") or opts.get("domain") or DEFAULT_DOMAIN)

    def _repr_html_(self) -> str:
        """The summary, latencies per request and the session-guarantee verdict."""
        summary = self.summary.T.reset_index()
        summary.columns = ["figure", "value"]
        return (
            frame_html(summary, f"load test {self.path.name}", limit=60)
            + frame_html(self.latencies_ms, "latency per request (ms, raw)")
            + self.check._repr_html_()
        )

    @cached_property
    def latencies(self) -> pd.DataFrame:
        """Per request name: count, answered 2xx, and the raw latencies' percentiles in
        seconds (``latency_p50_s``, ``latency_p90_s``, ... ``latency_max_s``,
        ``latency_mean_s``)."""
        rows = []
        for name, g in self.requests.groupby("name", sort=True):
            ok = g[g["ok"]]
            figures = percentiles(ok["latency_s"], "latency_", "_s")
            rows.append({"name": name, "count": len(g), "ok": len(ok), **figures})
        return pd.DataFrame(rows)

    @property
    def latencies_ms(self) -> pd.DataFrame:
        """:attr:`latencies` for display: ``latency p50 (ms)``, ..."""
        shown = self.latencies.copy()
        for col in [c for c in shown.columns if c.endswith("_s")]:
            shown[col] = shown[col] * 1e3
        return shown.rename(
            columns=lambda c: c[:-2].replace("_", " ") + " (ms)" if c.endswith("_s") else c
        )

    @cached_property
    def outcomes(self) -> pd.DataFrame:
        """Requests per name and outcome (``accepted``, ``refused``, ``conflict``, ``shed``,
        ...: :data:`~cqrs_lab.load.requests_table.OUTCOMES`), one column per outcome seen."""
        r = self.requests
        if not len(r):
            return pd.DataFrame(columns=["name"])
        table = r.groupby(["name", "outcome"]).size().unstack(fill_value=0)
        return table.reset_index().rename_axis(columns=None)

    @cached_property
    def throughput(self) -> pd.DataFrame:
        """Per second since the start: requests sent, 2xx, errors, commands answered 2xx."""
        r = self.requests
        if not len(r):
            return pd.DataFrame(columns=["t", "sent", "ok", "errors", "commands_ok"])
        sec = np.floor(r["t"].to_numpy(dtype=float)).astype(int)
        df = pd.DataFrame(
            {
                "t": sec,
                "ok": r["ok"],
                "error": r["error_kind"] != "",
                "cmd": r["ok"] & (r["method"] == "POST"),
            }
        )
        g = df.groupby("t")
        return pd.DataFrame(
            {
                "sent": g.size(),
                "ok": g["ok"].sum(),
                "errors": g["error"].sum(),
                "commands_ok": g["cmd"].sum(),
            }
        ).reset_index()

    @cached_property
    def errors(self) -> pd.DataFrame:
        """Counts of 5xx, 429 and connection errors per name, status and error text."""
        bad = self.requests[self.requests["error_kind"] != ""]
        cols = ["name", "status", "error_kind", "error"]
        if not len(bad):
            return pd.DataFrame(columns=[*cols, "count"])
        return bad.groupby(cols, dropna=False).size().rename("count").reset_index()

    @cached_property
    def staleness(self) -> pd.DataFrame:
        """Session reads: with the token (``read-token``) and without (``read`` after it)."""
        return session_staleness(self.history, self.t0)

    def plot_throughput(self, ax: Any = None) -> Any:
        """Requests sent, answered 2xx and errors per second."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3))
        tp = self.throughput
        for col in ("sent", "ok", "errors"):
            ax.plot(tp["t"], tp[col], label=col)
        ax.set_xlabel("time since the load started (s)")
        ax.set_ylabel("requests per second (requests/s)")
        ax.legend()
        return ax

    def plot_latency(self, ax: Any = None) -> Any:
        """Every command's exact latency (ms, log scale) against when it was sent."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3))
        r = self.requests
        cmd = commands(r)
        cmd = cmd[cmd["ok"]]
        ax.scatter(cmd["t"], cmd["latency_s"] * 1e3, s=2, alpha=0.4)
        ax.set_yscale("log")
        ax.set_xlabel("time since the load started (s)")
        ax.set_ylabel("command latency (ms, log scale)")
        return ax

    @cached_property
    def check(self) -> CheckReport:
        """The run's verdict: requests were made and every fault step was accepted, the
        session guarantees hold by key, nothing acknowledged was lost or doubled."""
        report = CheckReport(f"load test {self.path.name}")
        report.add(self._ran())
        if self.history:
            report.extend(check_history(self.history))
        else:  # nothing to judge them on: said so, not passed (nor failed: the requests are)
            why = "no operation in the client history (a locustfile of its own records none)"
            report.add(CheckResult("session guarantees", "info", f"not judged: {why}"))
        lost = self.lost
        bad = [
            Violation(f"{lost[k]} acknowledged writes {what}", ({"audit": lost},))
            for k, what in (("lost", "missing from the final views"), ("duplicated", "doubled"))
            if lost[k]
        ]
        if not bad and lost["acknowledged"] and not lost["verified"]:  # nothing was judged
            report.add(
                CheckResult(
                    "no lost writes",
                    "info",
                    f"not judged: none of {lost['acknowledged']} acknowledged writes could be "
                    f"looked up ({lost['unaudited']} in views that list no positions, "
                    f"{lost['unverified']} not read in time)",
                    measures=dict(lost),
                )
            )
            return report
        report.add(
            verdict(
                "no lost writes",
                bad,
                ok=f"{lost['verified']} of {lost['acknowledged']} acknowledged writes found "
                f"once in the final views ({lost['unaudited']} in views that list no "
                f"positions, {lost['unverified']} not read in time, {lost.get('expired', 0)} older "
                "than the oldest line the views still keep)",
                bad="{n} kinds of damage",
                measures=dict(lost),
            )
        )
        return report

    def _ran(self) -> CheckResult:
        n = len(self.requests)
        if not n:
            why = "no request was recorded: the run proves nothing; see locust*.log"
            return CheckResult("requests", "fail", why)
        failed = []
        path = self.path / "faults.jsonl"
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                f = json.loads(line)
                if not 200 <= int(f.get("status") or 0) < 300:
                    failed.append(Violation(f"fault step at {f['at']} s: HTTP {f['status']}", (f,)))
        per_file = self.histories
        files = ", ".join(f"{name}: {count}" for name, count in per_file.items())
        return verdict(
            "requests",
            failed,
            ok=f"{n} requests recorded, {len(self.history)} operations checked together "
            f"from {len(per_file)} histories ({files or 'none recorded'})",
            bad="{n} fault steps were not accepted by the server",
            measures={"requests": n, "operations": len(self.history), "histories": len(per_file)},
        )

    @cached_property
    def histories(self) -> dict[str, int]:
        """Operations per history file (one per Locust process), by file name: the history
        checked is all of them merged (:func:`cqrs_lab.load.audit.history_counts`)."""
        return history_counts(self.path / "records", self.history)

    @cached_property
    def lost(self) -> dict[str, int]:
        """Acknowledged writes missing from (or doubled in) the audited final answers
        (see :func:`cqrs_lab.load.audit.lost_writes`)."""
        return lost_writes(self.path)

    @cached_property
    def server_means(self) -> dict[str, float]:
        """Mean seconds per stage from the server's ``/metrics`` after the run (the
        instrumented server's stages, else per route from the request histogram)."""
        path = self.path / "metrics-end.txt"
        if not path.exists():
            return {}
        return stage_means(parse_metrics(path.read_text(encoding="utf-8")))

    @cached_property
    def summary(self) -> pd.DataFrame:
        """One row: what was aimed at and sent, throughput, latencies (s), the generator's
        lateness and CPU, whether it was generator-bound (see :mod:`cqrs_lab.load.summary`)."""
        from cqrs_lab.load.summary import summarise

        return summarise(self)


def load_results(path: str | Path) -> LoadResult:
    """Read a load test's results folder; a missing or empty folder raises ConfigError."""
    p = Path(path)
    records = p / "records"
    if not records.is_dir():
        raise ConfigError(
            f"{p}: not a load test results folder (no records/ inside); "
            "run `cqrs-lab loadtest --out DIR` first"
        )
    run_file = p / "run.json"
    stages_file = p / "server" / "stages.csv"
    reading = run_file
    try:
        run = json.loads(run_file.read_text(encoding="utf-8")) if run_file.exists() else {}
        reading = records
        requests = read_requests(records)
        history = read_history(records)
        reading = stages_file
        stages = (
            pd.read_csv(stages_file, dtype={"ref": str})  # request ids: text, never numbers
            if stages_file.exists()
            else pd.DataFrame(columns=list(STAGE_COLUMNS))
        )
        missing = [c for c in STAGE_COLUMNS if c not in stages.columns]
        if missing:
            raise ValueError(f"no column {', '.join(missing)}")
    except ConfigError:
        raise
    except (ValueError, KeyError, TypeError) as exc:  # JSON, UTF-8, CSV: not as written
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(
            f"{reading}: damaged ({type(exc).__name__}: {reason}): not as the load test "
            "wrote it; run `cqrs-lab loadtest --out DIR` again"
        ) from None
    if not isinstance(run, dict):
        raise ConfigError(f"{run_file}: not a JSON object; run the load test again")
    _check_run(run, run_file)
    t0 = float(requests["start"].min()) if len(requests) else 0.0
    return LoadResult(p, run, requests, history, stages, t0)


#: ``run.json``'s figures: seconds or cores, finite and >= 0 (null where not measured)
_RUN_NUMBERS = ("server_cpu_s", "generator_cpu_s", "server_idle_cpu", "database_cpu_s",
                "database_idle_cpu", "t0_monotonic", "t1_monotonic", "t0_wall")  # fmt: skip
#: the load test's options that are counts or rates: > 0 (null where not given)
_RUN_OPTIONS = ("rate", "duration", "users", "processes", "server_workers", "server_cpus")


def _check_run(run: dict[str, Any], run_file: Path) -> None:
    """``run.json`` as a load test writes it, or a ConfigError naming the key: a figure
    that is text, negative or not finite would otherwise be calibrated from."""

    def number(value: Any, positive: bool) -> bool:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok and math.isfinite(value) and (value > 0 if positive else value >= 0)

    for key in _RUN_NUMBERS:
        if run.get(key) is not None and not number(run[key], positive=False):
            raise ConfigError(
                f"{run_file}: {key}={run[key]!r} is not a number >= 0 as the load test writes "
                "it; the folder was changed or damaged: run the load test again"
            )
    options = run.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{run_file}: options={options!r} is not a JSON object; run it again")
    for key in _RUN_OPTIONS:
        if options.get(key) is not None and not number(options[key], positive=True):
            raise ConfigError(
                f"{run_file}: options.{key}={options[key]!r} is not a number > 0 as the load "
                "test writes it; the folder was changed or damaged: run the load test again"
            )
