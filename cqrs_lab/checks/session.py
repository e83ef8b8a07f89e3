"""Session guarantees and bounded staleness, checked over a history of client operations.

Positions are consistency tokens: a write's is where it was stored in the global log, a
read's is how far the answering read model had got. Operation *a* precedes *b* when *a*
completed before *b* was invoked (ties broken by order in the history). Two operations'
keys *match* when they are equal or either is ``None`` (a whole-model operation).

Within one session:

- **read-your-writes**: a read sees (position >=) every earlier write of its session to a
  matching key;
- **monotonic reads**: a read of a key is not older than an earlier read of a matching key;
- **monotonic writes**: a session's writes are stored in the order it issued them;
- **writes-follow-reads**: a write is stored after everything its session had read.

Across sessions, **bounded staleness**: a read that misses writes (to a matching key) that had
completed before it was invoked is stale by *positions* (the newest missed position minus
the read's) and by *time* (how long ago the oldest missed write completed); both are
compared with the user's bounds.

Unknown outcomes are treated as Jepsen does: the operation may or may not have happened, so
it neither obliges a later read to see it nor, lacking a trustworthy answer, testifies
against anything. A violation is reported only if it holds whether or not each unknown
operation happened. Failed operations did not happen.

>>> from cqrs_lab.checks.history import Operation as Op
>>> h = [Op("s", "write", "a", 0, 1, "ok", 5, 7), Op("s", "read", "a", 2, 3, "ok", 0, 6)]
>>> r = check_history(h)
>>> r["read-your-writes"].status, len(r["read-your-writes"].violations)
('fail', 1)
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cqrs_lab.checks.history import Operation
from cqrs_lab.checks.report import CheckReport, CheckResult, Violation, verdict
from cqrs_lab.errors import ConfigError

__all__ = ["GUARANTEES", "check_history"]

GUARANTEES = (
    "read-your-writes", "monotonic reads", "monotonic writes", "writes-follow-reads",
    "bounded staleness",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Op:
    line: int  # 1-based index in the history
    op: Operation

    @property
    def pos(self) -> int:
        p = self.op.position
        return p if p is not None else 0

    def show(self) -> dict[str, object]:
        o = self.op
        return {
            "line": self.line, "session": o.session, "op": o.op, "key": o.key,
            "invoke": o.invoke, "complete": o.complete, "outcome": o.outcome,
            "value": o.value, "position": o.position,
        }  # fmt: skip


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
        return max(found, key=lambda x: (x.pos, -x.line)) if found else None

    def first_above(self, o: _Op, keyed: bool) -> _Op | None:
        found = [n for p in self.matching(o, keyed) if (n := p.first_above(o.pos)) is not None]
        return min(found, key=lambda x: (x.op.complete, x.line)) if found else None


def _sweep(earlier: Sequence[_Op], later: Sequence[_Op]) -> Iterable[tuple[_Op, _Seen]]:
    """Yield each of ``later`` with the ``earlier`` operations that precede it."""
    pre = sorted(earlier, key=lambda o: (o.op.complete, o.line))
    seen, j = _Seen(), 0
    for cur in sorted(later, key=lambda o: (o.op.invoke, o.line)):
        while j < len(pre) and (pre[j].op.complete, pre[j].line) < (cur.op.invoke, cur.line):
            seen.add(pre[j])
            j += 1
        yield cur, seen


def _session_check(
    name: str, ops: list[_Op], earlier: str, later: str, keyed: bool, strict: bool, what: str
) -> CheckResult:
    found = []
    judged = 0
    sessions: dict[str, list[_Op]] = {}
    for o in ops:
        sessions.setdefault(o.op.session, []).append(o)
    for mine in sessions.values():
        pre = [o for o in mine if o.op.op == earlier]
        cur = [o for o in mine if o.op.op == later]
        for c, seen in _sweep(pre, cur):
            judged += 1
            n = seen.newest(c, keyed)
            if n is not None and (n.pos >= c.pos if strict else n.pos > c.pos):
                found.append(
                    Violation(
                        f"session {c.op.session}: {later} at line {c.line} (position {c.pos}) "
                        f"{what} {earlier} at line {n.line} (position {n.pos})",
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
        if bound_s is not None and by_time > bound_s:
            over.append(f"{by_time:g} s > {bound_s:g} s")
        if over:
            found.append(
                Violation(
                    f"read at line {r.line} (session {r.op.session}) stale by {' and '.join(over)}",
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
    if staleness_bound is not None and not staleness_bound >= 0:
        raise ConfigError(f"staleness_bound={staleness_bound}: pass seconds >= 0, or None")
    if staleness_positions is not None and staleness_positions < 0:
        raise ConfigError(f"staleness_positions={staleness_positions}: pass >= 0, or None")
    all_ops = [_Op(i, op) for i, op in enumerate(history, 1)]
    ops = [o for o in all_ops if o.op.outcome == "ok"]
    unknown = sum(o.op.outcome == "unknown" for o in all_ops)
    report = CheckReport(
        f"session guarantees over {len(all_ops)} operations ({unknown} unknown, "
        f"{sum(o.op.outcome == 'failed' for o in all_ops)} failed)"
    )
    report.add(_session_check("read-your-writes", ops, "write", "read", True, False, "misses"))
    report.add(_session_check("monotonic reads", ops, "read", "read", True, False, "is older than"))
    report.add(
        _session_check("monotonic writes", ops, "write", "write", False, True, "stored before")
    )
    report.add(
        _session_check(
            "writes-follow-reads",
            ops,
            "read",
            "write",
            False,
            True,
            "stored before what was read by",
        )
    )
    report.add(_staleness(ops, staleness_bound, staleness_positions))
    return report
