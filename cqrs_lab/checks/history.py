"""The history format: one record per client operation, JSON Lines on disk.

Fields (one JSON object per line):

=========== ========================================================================
session     client / session id (string)
op          ``"read"`` or ``"write"``
key         what was read or written (string; ``null`` for a whole-model operation)
invoke      time the client sent the request (seconds, float)
complete    time the client got the answer or gave up (seconds, >= invoke)
outcome     ``"ok"``, ``"failed"`` (did not happen) or ``"unknown"`` (timed out: may or
            may not have happened)
value       the value read or written (any JSON value, optional)
position    the consistency token: for a write the global position it was stored at,
            for a read the position the answering read model had reached (int, optional;
            required for an ``ok`` operation)
=========== ========================================================================

The simulation, the HTTP client helpers and the Locust drivers all write this format.

>>> import io
>>> ops = [Operation("s1", "write", "a", 0.0, 0.1, "ok", 5, 1),
...        Operation("s1", "read", "a", 0.2, 0.3, "ok", 5, 1)]
>>> buf = io.StringIO()
>>> write_jsonl(ops, buf)
>>> _ = buf.seek(0)
>>> read_jsonl(buf) == ops
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Literal

from cqrs_lab.errors import ConfigError

__all__ = [
    "HistoryError",
    "Operation",
    "load_frame",
    "read_jsonl",
    "to_frame",
    "write_jsonl",
]

OpKind = Literal["read", "write"]
Outcome = Literal["ok", "failed", "unknown"]
FIELDS = ("session", "op", "key", "invoke", "complete", "outcome", "value", "position")


class HistoryError(ConfigError):
    """A history record is malformed: the message names the line, the field and what is
    allowed."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation (see the module docstring for the fields)."""

    session: str
    op: OpKind
    key: str | None
    invoke: float
    complete: float
    outcome: Outcome
    value: Any = None
    position: int | None = None

    def __post_init__(self) -> None:
        validate(asdict(self), where="Operation")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fail(where: str, field: str, got: Any, allowed: str) -> HistoryError:
    return HistoryError(f"{where}: field {field!r} is {got!r}; {allowed}")


def _number(where: str, field: str, got: Any) -> float:
    if isinstance(got, bool) or not isinstance(got, int | float) or not math.isfinite(got):
        raise _fail(where, field, got, "pass a finite number of seconds")
    return float(got)


def validate(rec: dict[str, Any], *, where: str) -> None:
    """Raise :class:`HistoryError` naming ``where`` and the field if ``rec`` is malformed."""
    missing = [f for f in ("session", "op", "invoke", "complete", "outcome") if f not in rec]
    if missing:
        raise HistoryError(
            f"{where}: missing field {missing[0]!r}; a record needs {', '.join(FIELDS)}"
        )
    extra = sorted(set(rec) - set(FIELDS))
    if extra:
        raise HistoryError(f"{where}: unknown field {extra[0]!r}; allowed: {', '.join(FIELDS)}")
    if not isinstance(rec["session"], str) or not rec["session"]:
        raise _fail(where, "session", rec["session"], "pass a non-empty string")
    if rec["op"] not in ("read", "write"):
        raise _fail(where, "op", rec["op"], "allowed: 'read', 'write'")
    key = rec.get("key")
    if key is not None and not isinstance(key, str):
        raise _fail(where, "key", key, "pass a string, or null for a whole-model operation")
    invoke = _number(where, "invoke", rec["invoke"])
    complete = _number(where, "complete", rec["complete"])
    if complete < invoke:
        raise _fail(where, "complete", rec["complete"], f"must be >= invoke ({invoke})")
    if rec["outcome"] not in ("ok", "failed", "unknown"):
        raise _fail(where, "outcome", rec["outcome"], "allowed: 'ok', 'failed', 'unknown'")
    pos = rec.get("position")
    if pos is not None and (isinstance(pos, bool) or not isinstance(pos, int) or pos < 0):
        raise _fail(where, "position", pos, "pass a whole number >= 0, or null")
    if pos is None and rec["outcome"] == "ok":
        raise _fail(where, "position", pos, "an 'ok' operation needs its consistency token")


def _from_dict(rec: dict[str, Any], where: str) -> Operation:
    validate(rec, where=where)
    return Operation(
        rec["session"], rec["op"], rec.get("key"), float(rec["invoke"]), float(rec["complete"]),
        rec["outcome"], rec.get("value"), rec.get("position"),
    )  # fmt: skip


def read_jsonl(source: str | Path | IO[str]) -> list[Operation]:
    """Read a history; a malformed line raises :class:`HistoryError` naming line and field."""
    if isinstance(source, str | Path):
        name = str(source)
        try:
            with open(source, encoding="utf-8") as fh:
                return _read(fh, name)
        except FileNotFoundError:
            raise HistoryError(f"{name}: no such history file") from None
    return _read(source, getattr(source, "name", "<history>"))


def _read(fh: IO[str], name: str) -> list[Operation]:
    out = []
    for lineno, line in enumerate(fh, 1):
        if not line.strip():
            continue
        where = f"{name} line {lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryError(
                f"{where}: not valid JSON ({exc.msg}); one object per line"
            ) from None
        if not isinstance(rec, dict):
            raise HistoryError(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
        out.append(_from_dict(rec, where))
    return out


def write_jsonl(ops: Iterable[Operation], target: str | Path | IO[str]) -> None:
    """Write one JSON object per operation (keys in a fixed order, so output is stable)."""
    if isinstance(target, str | Path):
        with open(target, "w", encoding="utf-8") as fh:
            write_jsonl(ops, fh)
        return
    for op in ops:
        target.write(json.dumps(op.to_dict(), default=str) + "\n")


def to_frame(ops: Iterable[Operation]) -> Any:
    """The operations as a pandas DataFrame, one row per operation, columns ``FIELDS``."""
    import pandas as pd

    return pd.DataFrame([op.to_dict() for op in ops], columns=list(FIELDS))


def load_frame(path: str | Path) -> Any:
    """Read a JSON Lines history (validated) into a pandas DataFrame."""
    return to_frame(read_jsonl(path))
