"""How far behind a session's reads were after its own writes (the ``staleness`` table).

For every ``session-*`` of a load test's history, each read made after the session's last
acknowledged write: with the write's consistency token (``token`` true) and, from the
paired ``session-*/plain`` history, without it. A read ``saw_write`` when the position it
read is at or past the write's, else it was ``behind`` by that many positions.

>>> from cqrs_lab.checks.history import Operation
>>> w = Operation("session-1", "write", "a", 0.0, 0.1, "ok", "deposit", 5)
>>> r = Operation("session-1/plain", "read", "a", 0.2, 0.3, "ok", None, 3)
>>> table = session_staleness([w, r], t0=0.0)
>>> table[["token", "saw_write", "behind"]].values.tolist()
[[False, False, 2]]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from cqrs_lab.checks.history import Operation

__all__ = ["COLUMNS", "session_staleness"]

#: columns of the staleness table (``t``: seconds since the first send)
COLUMNS = (
    "session",
    "token",
    "write_position",
    "read_position",
    "outcome",
    "saw_write",
    "behind",
    "t",
)


def session_staleness(history: Iterable[Operation], t0: float) -> pd.DataFrame:
    """The staleness table of ``history`` (see the module docstring); ``t0``: the monotonic
    time of the first send."""
    rows = []
    by_session: dict[str, list[Operation]] = {}
    for o in history:
        by_session.setdefault(o.session, []).append(o)
    for sess, ops in by_session.items():
        if not sess.startswith("session-") or sess.endswith("/plain"):
            continue
        last: Operation | None = None
        for o in ops:
            if o.op == "write":
                last = o if o.outcome == "ok" else None
            elif last is not None:
                rows.append(_stale_row(sess, True, last, o))
        for o in by_session.get(f"{sess}/plain", []):
            w = _preceding_write(ops, o)
            if w is not None:
                rows.append(_stale_row(sess, False, w, o))
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if len(df):
        df["t"] = df["t"] - t0
    return df


def _preceding_write(ops: list[Operation], read: Operation) -> Operation | None:
    best = None
    for o in ops:
        if o.op == "write" and o.outcome == "ok" and o.complete <= read.invoke:
            best = o
    return best


def _stale_row(sess: str, token: bool, w: Operation, r: Operation) -> dict[str, Any]:
    rp = r.position if r.outcome == "ok" else None
    wp = int(w.position or 0)
    return {
        "session": sess,
        "token": token,
        "write_position": wp,
        "read_position": rp,
        "outcome": r.outcome,
        "saw_write": rp is not None and rp >= wp,
        "behind": max(0, wp - rp) if rp is not None else None,
        "t": r.invoke,
    }
