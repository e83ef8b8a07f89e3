"""The history format: one record per client operation, JSON Lines on disk.

Fields (one JSON object per line):

=========== ========================================================================
session     client / session id (string, required). Session ids are global: records
            with one id are one session, even when they come from different files
            (the load test's workers name sessions ``<kind>-<pid>-<n>``, so they never
            collide).
op          ``"read"`` or ``"write"`` (required)
key         what was read or written (required): a string, or an explicit ``null``
            for a whole-model operation (it matches every key). A record without
            ``key`` is an error, so a forgotten field is not taken for "everything".
invoke      time the client sent the request (seconds, float, required)
complete    time the client got the answer or gave up (seconds, >= invoke, required)
outcome     ``"ok"``, ``"failed"`` (did not happen) or ``"unknown"`` (timed out: may or
            may not have happened) (required)
value       the value read or written (any JSON value, optional)
position    the consistency token: for a write the global position it was stored at,
            for a read the position the answering read model had reached (int, optional;
            required for an ``ok`` operation)
=========== ========================================================================

The Locust drivers write this format (:mod:`cqrs_lab.load.records`), and so does
:func:`write_jsonl` for any list of :class:`Operation` (a client of one's own).
Lines are counted from 1, blank lines included, as an editor numbers them; each operation
read from a file keeps that place as its :class:`Origin`, which the checker cites. A
history with no operation at all is an error: a run that recorded nothing proves nothing.

>>> import io
>>> ops = [Operation("s1", "write", "a", 0.0, 0.1, "ok", 5, 1),
...        Operation("s1", "read", "a", 0.2, 0.3, "ok", 5, 1)]
>>> buf = io.StringIO()
>>> write_jsonl(ops, buf)
>>> _ = buf.seek(0)
>>> back = read_jsonl(buf)
>>> back == ops, back[1].origin
(True, Origin(file='<history>', line=2))
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

from cqrs_lab.errors import HistoryError

__all__ = [
    "HISTORY_GLOB",
    "HistoryError",
    "Operation",
    "Origin",
    "history_files",
    "load_frame",
    "read_histories",
    "read_jsonl",
    "to_frame",
    "write_jsonl",
]

OpKind = Literal["read", "write"]
Outcome = Literal["ok", "failed", "unknown"]
FIELDS = ("session", "op", "key", "invoke", "complete", "outcome", "value", "position")
REQUIRED = ("session", "op", "key", "invoke", "complete", "outcome")
#: the files a folder contributes to a history
HISTORY_GLOB = "*.jsonl"


class Origin(NamedTuple):
    """Where an operation was read: the file (as given) and its 1-based line."""

    file: str
    line: int


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation (see the module docstring for the fields).

    ``origin`` is set by the readers, ``None`` for an operation built in memory; it takes
    no part in equality and is not written out.
    """

    session: str
    op: OpKind
    key: str | None
    invoke: float
    complete: float
    outcome: Outcome
    value: Any = None
    position: int | None = None
    origin: Origin | None = field(default=None, compare=False, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        validate({f: getattr(self, f) for f in FIELDS}, where="Operation")

    def to_dict(self) -> dict[str, Any]:
        """The record's fields (``FIELDS``, in order), as written to a history file."""
        return {f: copy.deepcopy(getattr(self, f)) for f in FIELDS}


def _fail(where: str, field: str, got: Any, allowed: str) -> HistoryError:
    return HistoryError(f"{where}: field {field!r} is {got!r}; {allowed}")


def _number(where: str, field: str, got: Any) -> float:
    if isinstance(got, bool) or not isinstance(got, int | float) or not math.isfinite(got):
        raise _fail(where, field, got, "pass a finite number of seconds")
    return float(got)


def validate(rec: dict[str, Any], *, where: str) -> None:
    """Raise :class:`HistoryError` naming ``where`` and the field if ``rec`` is malformed."""
    missing = [f for f in REQUIRED if f not in rec]
    if missing:
        how = (
            'add "key": "<what was read or written>", or "key": null for a whole-model operation'
            if missing[0] == "key"
            else f"add it; every record needs {', '.join(REQUIRED)}"
        )
        raise HistoryError(f"{where}: missing field {missing[0]!r}; {how}")
    extra = sorted(set(rec) - set(FIELDS))
    if extra:
        raise HistoryError(
            f"{where}: unknown field {extra[0]!r}; remove it or fix its spelling "
            f"(allowed: {', '.join(FIELDS)})"
        )
    if not isinstance(rec["session"], str) or not rec["session"]:
        raise _fail(where, "session", rec["session"], "pass a non-empty string")
    if rec["op"] not in ("read", "write"):
        raise _fail(where, "op", rec["op"], "allowed: 'read', 'write'")
    key = rec["key"]
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
        raise _fail(
            where, "position", pos,
            "an 'ok' operation needs its consistency token; record it, or mark the "
            "outcome 'unknown'",
        )  # fmt: skip


def _records(lines: Iterable[tuple[int, str]], name: str) -> Iterator[Operation]:
    for lineno, line in lines:
        if not line.strip():
            continue
        where = f"{name} line {lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryError(
                f"{where}: not valid JSON ({exc.msg}, column {exc.colno}); "
                "write one JSON object per line"
            ) from None
        except RecursionError:
            raise HistoryError(
                f"{where}: JSON nested too deeply to be a record; write one flat JSON object "
                "per line"
            ) from None
        if not isinstance(rec, dict):
            raise HistoryError(
                f"{where}: a record must be a JSON object, got {type(rec).__name__}; "
                "write one object per line"
            )
        validate(rec, where=where)
        yield Operation(
            rec["session"], rec["op"], rec["key"], float(rec["invoke"]),
            float(rec["complete"]), rec["outcome"], rec.get("value"), rec.get("position"),
            origin=Origin(name, lineno),
        )  # fmt: skip


def _decoded(raw: Iterable[bytes], name: str) -> Iterator[tuple[int, str]]:
    """Each line decoded on its own, so a bad byte is reported on its own line."""
    for lineno, data in enumerate(raw, 1):
        if lineno == 1 and data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
            data = data[3:]
        try:
            yield lineno, data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HistoryError(
                f"{name} line {lineno}: not UTF-8 text (byte 0x{data[exc.start]:02x} at byte "
                f"{exc.start + 1} of the line); save the history as UTF-8"
            ) from None


#: the longest line a history may hold (a record with its read's value is far shorter)
MAX_LINE_BYTES = 16 << 20


def _lines(fh: IO[bytes], name: str) -> Iterator[bytes]:
    """The file's lines, each read up to :data:`MAX_LINE_BYTES` (a file of one endless line,
    or /dev/zero, is refused instead of read into memory)."""
    lineno = 0
    while line := fh.readline(MAX_LINE_BYTES + 1):
        lineno += 1
        if len(line) > MAX_LINE_BYTES:
            raise HistoryError(
                f"{name} line {lineno}: longer than {MAX_LINE_BYTES >> 20} MiB; a history holds "
                "one JSON object per line: check the file is a history"
            )
        yield line


def _read_file(path: Path) -> list[Operation]:
    name = str(path)
    try:
        with open(path, "rb") as fh:
            return list(_records(_decoded(_lines(fh, name), name), name))
    except FileNotFoundError:
        raise HistoryError(
            f"{name}: no such history file; check the path (a load test writes "
            "records/history-*.jsonl)"
        ) from None
    except IsADirectoryError:
        raise HistoryError(
            f"{name}: is a folder, not a history file; pass the file, or read the folder's "
            f"{HISTORY_GLOB} files with read_histories()"
        ) from None
    except OSError as exc:
        raise HistoryError(
            f"{name}: cannot read it ({exc.strerror}); check its permissions"
        ) from None


def _empty(name: str) -> HistoryError:
    return HistoryError(
        f"{name}: no operation in the history; a run that recorded nothing cannot be "
        "checked. Check that the client recorded its operations (cqrs-lab loadtest writes "
        "them to records/history-*.jsonl)"
    )


def read_jsonl(source: str | Path | IO[str]) -> list[Operation]:
    """Read one history file or stream; a malformed line raises :class:`HistoryError`
    naming the file, the line and the field, and so does a history with no operation."""
    if isinstance(source, str | Path):
        ops = _read_file(Path(source))
        name = str(source)
    else:
        name = getattr(source, "name", "<history>")
        ops = list(_records(enumerate(source, 1), name))
    if not ops:
        raise _empty(name)
    return ops


def history_files(sources: Iterable[str | Path]) -> list[Path]:
    """The files that make up a history: each file as given, each folder's
    ``*.jsonl`` files (not its subfolders) in name order; a file named twice counts once.

    A missing path, or a folder without a ``*.jsonl`` file, raises :class:`HistoryError`.
    """
    files: dict[Path, Path] = {}
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.glob(HISTORY_GLOB) if p.is_file())
            if not found:
                raise HistoryError(
                    f"{path}: folder holds no history file ({HISTORY_GLOB}); pass the folder "
                    "a load test wrote its history-*.jsonl into (its records/), or the files"
                )
        elif path.exists():
            found = [path]
        else:
            raise HistoryError(
                f"{path}: no such history file or folder; check the path (a load test "
                "writes records/history-*.jsonl)"
            )
        for p in found:
            files.setdefault(p.resolve(), p)
    if not files:
        raise HistoryError("no history given; pass history files or folders of them")
    return list(files.values())


def read_histories(sources: Iterable[str | Path], *, allow_empty: bool = False) -> list[Operation]:
    """One history merged from files and folders (see :func:`history_files`), in file
    order, each operation with its :class:`Origin`. Session ids are global (see the module
    docstring). A file without operations adds nothing (a load-test worker may have had no
    user); if no file holds one, :class:`HistoryError`, unless ``allow_empty``.
    """
    files = history_files(sources)
    ops = [op for path in files for op in _read_file(path)]
    if not ops and not allow_empty:
        raise _empty(", ".join(map(str, files)))
    return ops


def write_jsonl(ops: Iterable[Operation], target: str | Path | IO[str]) -> None:
    """Write one JSON object per operation (keys in a fixed order, so output is stable)."""
    if isinstance(target, str | Path):
        with open(target, "w", encoding="utf-8") as fh:
            write_jsonl(ops, fh)
        return
    for op in ops:
        target.write(json.dumps(op.to_dict(), default=str) + "\n")


def to_frame(ops: Iterable[Operation]) -> Any:
    """The operations as a pandas DataFrame, one row per operation, columns ``FIELDS``.

    ``position`` has pandas' nullable ``Int64`` dtype, so a missing token is ``<NA>`` and
    the others stay whole numbers (never floats).
    """
    import pandas as pd

    df = pd.DataFrame([op.to_dict() for op in ops], columns=list(FIELDS))
    df["position"] = df["position"].astype("Int64")
    return df


def load_frame(path: str | Path) -> Any:
    """Read a history file, or a folder's ``*.jsonl`` files, into a pandas DataFrame
    (validated; an empty history raises :class:`HistoryError`)."""
    return to_frame(read_histories([path]))
