"""Session guarantees and bounded staleness, checked over a history of client operations.

Positions are consistency tokens: a write's is where it was stored in the global log, a
read's is how far the answering read model had got. Operation *a* precedes *b* when *a*
completed before *b* was invoked (ties broken by order in the history). Two operations'
keys *match* when they are equal or either is ``None`` (a whole-model operation). Sessions
are told apart by their id alone, whichever file a record came from.

Within one session:

- **read-your-writes**: a read sees (position >=) every earlier write of its session to a
  matching key;
- **monotonic reads**: a read of a key is not older than an earlier read of a matching key;
- **monotonic writes**: a session's writes are stored in the order it issued them (a
  write stored at a lower position than an earlier write of the session violates it);
- **writes-follow-reads**: a write is stored after everything its session had read.

A *replay* is a write answered with the position of an earlier write of its session to the
same key with the same value: an idempotent retry answered from the idempotency record,
which stored nothing new. It is not judged again by the two write guarantees (its original
was); another value at that position is judged.

Across sessions, **bounded staleness**: a read that misses writes (to a matching key) that had
completed before it was invoked is stale by *positions* (the newest missed position minus
the read's) and by *time* (how long ago the oldest missed write completed); both are
compared with the user's bounds, time with a tolerance for float noise (see ``_over``).

Unknown outcomes are treated as Jepsen does: the operation may or may not have happened, so
it neither obliges a later read to see it nor, lacking a trustworthy answer, testifies
against anything. A violation is reported only if it holds whether or not each unknown
operation happened. Failed operations did not happen.

Violations cite where each operation was read: ``line 7`` (one file), ``h-2.jsonl line 7``
(several files; lines count from 1, blank ones included); an operation built in memory is
cited by its number in the history, ``operation 7``. The evidence records carry the same
as ``file`` and ``line``, or ``operation``.

>>> from cqrs_lab.checks.history import Operation as Op
>>> h = [Op("s", "write", "a", 0, 1, "ok", 5, 7), Op("s", "read", "a", 2, 3, "ok", 0, 6)]
>>> r = check_history(h)
>>> r["read-your-writes"].status, len(r["read-your-writes"].violations)
('fail', 1)
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cqrs_lab.checks.history import Operation, validate
from cqrs_lab.checks.report import CheckReport, CheckResult, Violation, verdict
from cqrs_lab.errors import ConfigError, HistoryError

__all__ = ["GUARANTEES", "check_history"]

GUARANTEES = (
    "read-your-writes", "monotonic reads", "monotonic writes", "writes-follow-reads",
    "bounded staleness",
)  # fmt: skip

# (guarantee, earlier op, later op, keys must match, equal positions violate, verb)
_SESSION_CHECKS = (
    ("read-your-writes", "write", "read", True, False, "misses"),
    ("monotonic reads", "read", "read", True, False, "is older than"),
    # equal positions: an idempotent retry answered with its original's position
    ("monotonic writes", "write", "write", False, False, "stored before"),
    # a write stored at the position read was stored before what was read
    ("writes-follow-reads", "read", "write", False, True, "stored before what was read by"),
)

# Times are float seconds from the client's clock. Near an epoch timestamp (~1.7e9 s) one
# float step is ~2.4e-7 s, so a difference of two such times carries up to ~5e-7 s of
# rounding noise, and client clocks tick no finer than 1 us. A read is over a time bound
# only by more than that: 1e-6 s absolute, or 1e-9 of the bound for very large bounds.
TIME_ABS_TOL = 1e-6
TIME_REL_TOL = 1e-9


def _over(seconds: float, bound: float) -> bool:
    """``seconds`` exceeds ``bound`` by more than float noise (0.2000001 > 0.2 does not)."""
    return seconds > bound and not math.isclose(
        seconds, bound, rel_tol=TIME_REL_TOL, abs_tol=TIME_ABS_TOL
    )


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a value may be a dict
class _Op:
    seq: int  # 1-based number in the history (breaks ties in history order)
    op: Operation
    where: str  # how a message cites it: "line 3", "h-1.jsonl line 3" or "operation 3"

    @property
    def pos(self) -> int:
        p = self.op.position
        return p if p is not None else 0

    def show(self) -> dict[str, object]:
        o = self.op
        place = {"operation": self.seq} if o.origin is None else o.origin._asdict()
        return place | {
            "session": o.session, "op": o.op, "key": o.key, "invoke": o.invoke,
            "complete": o.complete, "outcome": o.outcome, "value": o.value,
            "position": o.position,
        }  # fmt: skip


def _located(history: Iterable[Operation]) -> list[_Op]:
    if isinstance(history, Mapping | Operation) or not isinstance(history, Iterable):
        raise ConfigError(
            f"check_history(history={history!r}): pass a list of Operation records "
            "(read_jsonl or read_histories reads them from files)"
        )
    ops: list[Any] = list(history)  # checked here: a caller may pass anything
    for seq, o in enumerate(ops, 1):
        if not isinstance(o, Operation):
            _not_an_operation(o, f"operation {seq}")
    several = len({o.origin.file for o in ops if o.origin is not None}) > 1
    out = []
    for seq, o in enumerate(ops, 1):
        if o.origin is None:
            where = f"operation {seq}"
        else:
            where = f"{o.origin.file} line {o.origin.line}" if several else f"line {o.origin.line}"
        out.append(_Op(seq, o, where))
    return out


def _not_an_operation(record: object, where: str) -> None:
    """Raise :class:`HistoryError` for a record of a history that is not an
    :class:`Operation`: a dict is checked as a record read from a file would be, naming
    the field it lacks or holds wrong."""
    if isinstance(record, Mapping):
        validate(dict(record), where=where)
        fix = "build one with Operation(**record)"
    else:
        fix = "pass Operation records"
    raise HistoryError(
        f"{where}: a record must be an Operation, got {type(record).__name__}; {fix}"
    )


class _Prefix:
    """Operations added in completion order; the newest position, and the earliest
    completed operation above a given position."""

    def __init__(self) -> None:
        self.best: list[int] = []  # running max of positions
        self.best_op: list[_Op] = []
        self.ops: list[_Op] = []

    def add(self, o: _Op) -> None:
        if self.best and self.best[-1] >= o.pos:
            self.best.append(self.best[-1])
            self.best_op.append(self.best_op[-1])
        else:
            self.best.append(o.pos)
            self.best_op.append(o)
        self.ops.append(o)

    def newest(self) -> _Op | None:
        return self.best_op[-1] if self.best_op else None

    def first_above(self, position: int) -> _Op | None:
        i = bisect_right(self.best, position)
        return self.ops[i] if i < len(self.ops) else None


class _Seen:
    def __init__(self) -> None:
        self.by_key: dict[str | None, _Prefix] = {}
        self.all = _Prefix()

    def add(self, o: _Op) -> None:
        self.by_key.setdefault(o.op.key, _Prefix()).add(o)
        self.all.add(o)

    def matching(self, o: _Op, keyed: bool) -> list[_Prefix]:
        if not keyed or o.op.key is None:
            return [self.all]
        return [p for p in (self.by_key.get(o.op.key), self.by_key.get(None)) if p is not None]

    def newest(self, o: _Op, keyed: bool) -> _Op | None:
        found = [n for p in self.matching(o, keyed) if (n := p.newest()) is not None]
        return max(found, key=lambda x: (x.pos, -x.seq)) if found else None

    def first_above(self, o: _Op, keyed: bool) -> _Op | None:
        found = [n for p in self.matching(o, keyed) if (n := p.first_above(o.pos)) is not None]
        return min(found, key=lambda x: (x.op.complete, x.seq)) if found else None


def _sweep(earlier: Sequence[_Op], later: Sequence[_Op]) -> Iterable[tuple[_Op, _Seen]]:
    """Yield each of ``later`` with the ``earlier`` operations that precede it."""
    pre = sorted(earlier, key=lambda o: (o.op.complete, o.seq))
    seen, j = _Seen(), 0
    for cur in sorted(later, key=lambda o: (o.op.invoke, o.seq)):
        while j < len(pre) and (pre[j].op.complete, pre[j].seq) < (cur.op.invoke, cur.seq):
            seen.add(pre[j])
            j += 1
        yield cur, seen


def _replays(mine: Sequence[_Op]) -> set[int]:
    """The ``seq`` of each write of one session that repeats the key, position *and value*
    of one it invoked earlier: an idempotent retry answered from the idempotency record. A
    write of another value answered with an earlier write's position is no retry, and is
    judged (a write that changes nothing is answered with the head's position)."""
    stored: dict[tuple[str | None, int], list[Any]] = {}
    out = set()
    for o in sorted((o for o in mine if o.op.op == "write"), key=lambda o: (o.op.invoke, o.seq)):
        values = stored.setdefault((o.op.key, o.pos), [])
        if any(v == o.op.value for v in values):
            out.add(o.seq)
        values.append(o.op.value)
    return out


def _session_check(
    name: str, ops: list[_Op], earlier: str, later: str, keyed: bool, strict: bool, what: str
) -> CheckResult:
    found = []
    judged = 0
    sessions: dict[str, list[_Op]] = {}
    for o in ops:
        sessions.setdefault(o.op.session, []).append(o)
    for mine in sessions.values():
        replays = _replays(mine) if later == "write" else set()
        pre = [o for o in mine if o.op.op == earlier]
        cur = [o for o in mine if o.op.op == later and o.seq not in replays]
        for c, seen in _sweep(pre, cur):
            judged += 1
            n = seen.newest(c, keyed)
            if n is not None and (n.pos >= c.pos if strict else n.pos > c.pos):
                found.append(
                    Violation(
                        f"session {c.op.session}: {later} at {c.where} (position {c.pos}) "
                        f"{what} {earlier} at {n.where} (position {n.pos})",
                        (n.show(), c.show()),
                    )
                )
    return verdict(
        name, found, ok=f"{judged} operations judged, none violates it",
        bad="{n} violations", measures={"judged": judged},
    )  # fmt: skip


def _staleness(ops: list[_Op], bound_s: float | None, bound_pos: int | None) -> CheckResult:
    writes = [o for o in ops if o.op.op == "write"]
    reads = [o for o in ops if o.op.op == "read"]
    worst_pos, worst_time = 0, 0.0
    worst: list[_Op] = []
    found, stale = [], 0
    for r, seen in _sweep(writes, reads):
        newest = seen.newest(r, True)
        if newest is None or newest.pos <= r.pos:
            continue
        oldest = seen.first_above(r, True) or newest
        stale += 1
        by_pos, by_time = newest.pos - r.pos, r.op.invoke - oldest.op.complete
        if by_pos > worst_pos or by_time > worst_time:
            worst = [r, oldest, newest]
        worst_pos, worst_time = max(worst_pos, by_pos), max(worst_time, by_time)
        over = []
        if bound_pos is not None and by_pos > bound_pos:
            over.append(f"{by_pos} positions > {bound_pos}")
        if bound_s is not None and _over(by_time, bound_s):
            over.append(f"{by_time:g} s > {bound_s:g} s")
        if over:
            found.append(
                Violation(
                    f"read at {r.where} (session {r.op.session}) stale by {' and '.join(over)}",
                    tuple(x.show() for x in dict.fromkeys([r, oldest, newest])),
                )
            )
    measures = {
        "reads": len(reads), "stale_reads": stale, "max_staleness_positions": worst_pos,
        "max_staleness_seconds": worst_time, "bound_seconds": bound_s, "bound_positions": bound_pos,
    }  # fmt: skip
    bounds = [] if bound_s is None else [f"{bound_s:g} s"]
    bounds += [] if bound_pos is None else [f"{bound_pos} positions"]
    ok = (
        f"max staleness {worst_pos} positions, {worst_time:g} s over {len(reads)} reads "
        f"({stale} stale)" + (f"; within {' and '.join(bounds)}" if bounds else "; no bound given")
    )
    result = verdict(
        "bounded staleness",
        found,
        ok=ok,
        bad="{n} reads beyond the bound; " + ok,
        measures=measures,
    )
    if not found and worst:
        worst_v = Violation(
            "the stalest read, for reference", tuple(x.show() for x in dict.fromkeys(worst))
        )
        return CheckResult(
            result.name,
            result.status,
            result.summary,
            (),
            measures | {"stalest": worst_v.to_dict()},
        )
    return result


def check_history(
    history: Iterable[Operation],
    *,
    staleness_bound: float | None = None,
    staleness_positions: int | None = None,
) -> CheckReport:
    """Check the session guarantees and bounded staleness; one result per guarantee."""
    if staleness_bound is not None and (
        isinstance(staleness_bound, bool)
        or not isinstance(staleness_bound, int | float)
        or not 0 <= staleness_bound < math.inf
    ):
        raise ConfigError(
            f"staleness_bound={staleness_bound!r}: pass seconds >= 0 (a finite number), or None"
        )
    given: object = staleness_positions  # checked as the caller may pass anything
    if given is not None and (
        isinstance(given, bool) or not isinstance(given, numbers.Integral) or int(given) < 0
    ):
        raise ConfigError(
            f"staleness_positions={given!r}: pass a whole number of positions >= 0, or None"
        )
    all_ops = _located(history)
    ops = [o for o in all_ops if o.op.outcome == "ok"]
    unknown = sum(o.op.outcome == "unknown" for o in all_ops)
    report = CheckReport(
        f"session guarantees over {len(all_ops)} operations ({unknown} unknown, "
        f"{sum(o.op.outcome == 'failed' for o in all_ops)} failed)"
    )
    if not ops:  # nothing known to have happened: no guarantee can be seen to hold
        report.add(
            CheckResult(
                "history",
                "fail",
                f"no operation with a known outcome among {len(all_ops)} recorded: a run that "
                "recorded nothing (or only failures and unknowns) proves nothing",
            )
        )
    for name, earlier, later, keyed, strict, what in _SESSION_CHECKS:
        report.add(_session_check(name, ops, earlier, later, keyed, strict, what))
    report.add(_staleness(ops, staleness_bound, staleness_positions))
    return report
