"""The lost-write audit: after the load, the final answers of the workload's reads for every
key written to, and which acknowledged writes they hold.

:func:`audit_views` asks the server (with the newest acknowledged position as the token, so
its views have applied every write) and writes ``audit.jsonl``; :func:`lost_writes` judges
from it and the history. A write is judged where a view's answer for its key lists lines
with their positions (the bank's statement); a domain whose views list no positions is
judged by the session guarantees alone.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> (folder / "records").mkdir()
>>> lost_writes(folder)["acknowledged"]
0
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cqrs_lab.checks.history import Operation, read_histories

if TYPE_CHECKING:
    from cqrs_lab.load.traffic import Traffic

__all__ = [
    "acknowledged_writes",
    "audit_views",
    "history_counts",
    "lost_writes",
    "read_history",
    "written_keys",
]


def read_history(records: Path) -> list[Operation]:
    """Every worker's history merged, each operation citing its file and line; a run that
    recorded no history still has its latencies, so an empty one is no error here."""
    files = sorted(records.glob("history-*.jsonl"))
    return read_histories(files, allow_empty=True) if files else []


def history_counts(records: Path, ops: list[Operation] | None = None) -> dict[str, int]:
    """Operations per history file in ``records`` (one ``history-*.jsonl`` per Locust
    process, master and workers alike), by file name, in name order; a file that holds none
    counts 0. ``ops`` (optional) is :func:`read_history`'s answer, not read again."""
    files = sorted(records.glob("history-*.jsonl"))
    counts = {f.name: 0 for f in files}
    for op in read_history(records) if ops is None else ops:
        if op.origin is not None:
            name = Path(op.origin.file).name
            counts[name] = counts.get(name, 0) + 1
    return counts


def _own_stream(op: Operation) -> bool:
    """A write whose events went to its key's own stream (``account-acct-3`` for key
    ``acct-3``), so a view of the key lists it; a transfer's went to the transfer's stream.
    Records without the stream (older runs) count, except the old ``transfer:`` keys."""
    key, value = op.key or "", op.value
    if isinstance(value, dict) and isinstance(value.get("stream"), str):
        stream = value["stream"]
        return bool(stream == key or stream.endswith("-" + key))
    return not key.startswith("transfer:")


def acknowledged_writes(records: str | Path) -> list[tuple[str, int]]:
    """(key, position) of every acknowledged write to its key's own stream in the history."""
    return [
        (op.key, op.position)
        for op in read_history(Path(records))
        if op.op == "write"
        and op.outcome == "ok"
        and op.key is not None
        and op.position is not None
        and _own_stream(op)
    ]


def written_keys(records: str | Path) -> dict[str, int]:
    """Every key an acknowledged write touched, with the newest position written to it."""
    out: dict[str, int] = {}
    for op in read_history(Path(records)):
        if op.op == "write" and op.outcome == "ok" and op.key and op.position is not None:
            out[op.key] = max(out.get(op.key, 0), op.position)
    return out


def _listed_positions(answer: Any) -> list[int] | None:
    """The ``position`` of every line of an answer that lists lines (a statement), else
    None: the answer does not say which writes it holds."""
    rows = answer.get("lines") if isinstance(answer, dict) else answer
    if (
        isinstance(rows, list)
        and rows
        and all(isinstance(x, dict) and "position" in x for x in rows)
    ):
        return [int(x["position"]) for x in rows]
    return None


def _audited(path: Path) -> tuple[dict[str, list[list[int]]], set[str], set[str]]:
    """From ``audit.jsonl``: per key, the position lists of its answers that list lines;
    the keys every read answered (at or past the token); the keys some read did not."""
    listed: dict[str, list[list[int]]] = {}
    answered: set[str] = set()
    missing: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "account" in rec:  # older runs: the bank's statement only
            key, answer = rec["account"], rec.get("statement")
            status = 200 if answer else 0
        else:
            key, status, answer = rec["key"], int(rec.get("status") or 0), rec.get("answer")
        if not 200 <= status < 300:
            missing.add(key)
            continue
        answered.add(key)
        positions = _listed_positions(answer)
        if positions is not None:
            listed.setdefault(key, []).append(positions)
    return listed, answered - missing, missing


def lost_writes(folder: Path) -> dict[str, int]:
    """Acknowledged writes missing from (or doubled in) the audited final answers.

    A write is judged where a view's final answer for its key lists lines with their
    positions (the bank's statement) reaching back to it; ``expired``: every such answer
    begins after the write (a view that keeps a recent history, as the bank's statement
    keeps an account's newest lines, no longer lists it, so it can neither prove nor
    disprove it); ``unaudited``: its key's views answered but list no positions (only the
    session guarantees judge such a domain's writes); ``unverified``: a read of its key
    did not answer (in time).
    """
    path = folder / "audit.jsonl"
    out = {"acknowledged": 0, "verified": 0, "lost": 0, "duplicated": 0,
           "unverified": 0, "unaudited": 0, "expired": 0}  # fmt: skip
    if not path.exists():
        return out
    listed, answered, _ = _audited(path)
    for key, pos in acknowledged_writes(folder / "records"):
        out["acknowledged"] += 1
        if key not in answered:
            out["unverified"] += 1
        elif key not in listed:
            out["unaudited"] += 1
        else:
            reaching = [lines for lines in listed[key] if lines and min(lines) <= pos]
            if not reaching:
                out["expired"] += 1
                continue
            counts = [lines.count(pos) for lines in reaching]
            out["verified"] += 1
            out["lost"] += min(counts) == 0
            out["duplicated"] += max(counts) > 1
    return out


def audit_views(url: str, out: Path, traffic: Traffic, budget: float = 30.0) -> dict[str, Any]:
    """After the load: read every key written to through each of the workload's reads,
    with the newest acknowledged position as the consistency token (the server waits for
    its views to reach it and refuses a stale answer), and save the answers in
    ``audit.jsonl`` (the loader checks from them that nothing acknowledged is lost).

    A read asks with the query's required fields only (its widest answer: a statement's
    every line). Bounded by ``budget`` seconds in all; reads not made in time are recorded
    without an answer and count as unverified.
    """
    written = written_keys(out / "records")
    if not written:
        return {"keys": 0}
    head = max(written.values())
    index = {traffic.workload.key(i): i for i in range(traffic.keys)}
    t_end = time.monotonic() + budget
    skipped = 0
    with (out / "audit.jsonl").open("w", encoding="utf-8") as fh:
        for key in sorted(written):
            if key not in index:
                continue  # not one of this run's keys (a history from elsewhere)
            for read in traffic.audit_reads(key, index[key]):
                query = urllib.parse.urlencode({**read.params, "wait": "5", "stale": "refuse"})
                req = urllib.request.Request(
                    f"{url}{read.path}?{query}", headers={"X-Consistency-Token": str(head)}
                )
                status, position, body = 0, None, None
                for _ in range(3):
                    left = t_end - time.monotonic()
                    if left <= 0:
                        skipped += 1
                        break
                    try:
                        with urllib.request.urlopen(req, timeout=min(10.0, left)) as resp:
                            status, position = resp.status, resp.headers.get("X-Read-Position")
                            body = json.loads(resp.read())
                            break
                    except urllib.error.HTTPError as exc:
                        status = exc.code
                        break
                    except OSError:
                        time.sleep(0.2)
                rec = {"key": key, "view": read.view, "path": read.path, "status": status,
                       "read_position": position, "answer": body}  # fmt: skip
                fh.write(json.dumps(rec) + "\n")
    return {"keys": len(written), "head": head, "out_of_time": skipped}
