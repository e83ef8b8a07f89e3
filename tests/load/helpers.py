"""Small recorded load-test folders, written by hand, for the loader and twin tests."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cqrs_lab.load.records import REQUEST_COLUMNS

#: the columns of ``server/stages.csv`` as ``cqrs-lab serve --stages-csv`` writes them
STAGE_COLUMNS = ("stage", "name", "at", "seconds", "events")
T0 = 1000.0  # monotonic time of the first request in every folder


def request(
    start: float, name: str, status: int = 200, latency_s: float = 0.001, **extra: Any
) -> dict[str, Any]:
    """One requests-*.csv row; ``start`` is seconds after T0."""
    row: dict[str, Any] = {c: "" for c in REQUEST_COLUMNS}
    method = "GET" if name.startswith("read") else "POST"
    row.update(
        start=T0 + start,
        end=T0 + start + latency_s,
        kind="writer",
        name=name,
        method=method,
        status=status,
        latency_s=latency_s,
        lateness_s=0.0,
        bytes=10,
        process="t",
    )
    row.update(extra)
    return row


def op(
    session: str,
    kind: str,
    key: str | None,
    invoke: float,
    complete: float,
    outcome: str = "ok",
    value: Any = None,
    position: int | None = None,
) -> dict[str, Any]:
    return {
        "session": session,
        "op": kind,
        "key": key,
        "invoke": T0 + invoke,
        "complete": T0 + complete,
        "outcome": outcome,
        "value": value,
        "position": position,
    }


def write_run(
    path: Path,
    requests: Sequence[dict[str, Any]],
    history: Sequence[dict[str, Any]] = (),
    stages: Sequence[tuple[str, str, float, float, int]] = (),
    cpu: Sequence[tuple[float, float]] = (),
    audit: Sequence[dict[str, Any]] | None = None,
    run: dict[str, Any] | None = None,
) -> Path:
    """Write a results folder; ``stages`` and ``cpu`` times are seconds after T0."""
    rec = path / "records"
    rec.mkdir(parents=True)
    with (rec / "requests-t.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, REQUEST_COLUMNS)
        w.writeheader()
        w.writerows(requests)
    (rec / "history-t.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    if stages:
        (path / "server").mkdir()
        with (path / "server" / "stages.csv").open("w", newline="") as fh:
            sw = csv.writer(fh)
            sw.writerow(STAGE_COLUMNS)
            for stage, name, at, secs, n in stages:
                sw.writerow((stage, name, T0 + at, secs, n))
    if cpu:
        lines = ["t,server_cpu_s,generator_cpu_s"]
        lines += [f"{T0 + t},{c},0" for t, c in cpu]
        (path / "cpu.csv").write_text("\n".join(lines) + "\n")
    if audit is not None:
        (path / "audit.jsonl").write_text("".join(json.dumps(a) + "\n" for a in audit))
    info = {
        "model": "open",
        "users": 4,
        "options": {"duration": 10.0, "accounts": 10, "zipf_s": 1.1},
    }
    info.update(run or {})
    (path / "run.json").write_text(json.dumps(info))
    return path
