"""Read models: in-memory tables with get, filter and ordered queries, and undo for units.

A :class:`Table` keeps rows by key. Rows are replaced, never mutated in place (``put`` a new
row, or use ``update``), so a subscription can roll a unit of work back: while a unit is
open, every write logs the old row in the unit's undo log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["Progress", "Table"]

_MISSING: Any = object()
_APPENDED: Any = object()  # undo marker: pop the last item of a list row
UndoLog = list[tuple["Table", Any, Any]]


class Table:
    """A keyed in-memory table.

    >>> t = Table("balances")
    >>> t.put("a1", {"account_id": "a1", "balance": 5})
    >>> t.update("a1", balance=7)["balance"], len(t)
    (7, 1)
    >>> [r["account_id"] for r in t.order_by("balance", descending=True)]
    ['a1']
    """

    __slots__ = ("_rows", "_undo", "get", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._rows: dict[Any, Any] = {}
        self._undo: UndoLog | None = None
        #: ``get(key, default=None)``: the row dict's own ``get`` (the hot path of handlers)
        self.get: Callable[..., Any] = self._rows.get

    # -- reads -----------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        return self._rows[key]

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def items(self) -> list[tuple[Any, Any]]:
        return list(self._rows.items())

    def values(self) -> list[Any]:
        return list(self._rows.values())

    def to_dict(self) -> dict[Any, Any]:
        """A copy of the rows (for checks and tables)."""
        return dict(self._rows)

    def filter(self, predicate: Callable[[Any], bool] | None = None, **equals: Any) -> list[Any]:
        """Rows matching ``predicate`` and every ``field=value`` given."""
        out = []
        for row in self._rows.values():
            if equals and any(_field(row, k) != v for k, v in equals.items()):
                continue
            if predicate is not None and not predicate(row):
                continue
            out.append(row)
        return out

    def order_by(
        self,
        field: str | Callable[[Any], Any],
        *,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Any]:
        """Rows sorted by a field name or key function; ties keep insertion order."""
        key = field if callable(field) else (lambda row: _field(row, field))
        rows = sorted(self._rows.values(), key=key, reverse=descending)
        return rows if limit is None else rows[:limit]

    # -- writes ----------------------------------------------------------------------------
    def put(self, key: Any, row: Any) -> None:
        undo = self._undo
        if undo is not None:
            undo.append((self, key, self._rows.get(key, _MISSING)))
        self._rows[key] = row

    def append(self, key: Any, item: Any) -> None:
        """Append ``item`` to the list row at ``key`` (an append-only log row, cheap to undo)."""
        rows = self._rows
        row = rows.get(key)
        if row is None:
            self.put(key, [item])
            return
        undo = self._undo
        if undo is not None:
            undo.append((self, key, _APPENDED))
        row.append(item)

    def update(self, key: Any, **changes: Any) -> Mapping[str, Any]:
        """Replace a mapping row by a copy with ``changes`` applied (a new row if absent)."""
        row = {**self._rows.get(key, {}), **changes}
        self.put(key, row)
        return row

    def delete(self, key: Any) -> None:
        if key not in self._rows:
            return
        undo = self._undo
        if undo is not None:
            undo.append((self, key, self._rows[key]))
        del self._rows[key]

    def clear(self) -> None:
        self._rows.clear()

    def replace_with(self, other: Table) -> None:
        """Take ``other``'s rows in one step (the swap at the end of a shadow rebuild)."""
        self._rows.clear()
        self._rows.update(other._rows)

    def load(self, rows: Mapping[Any, Any]) -> None:
        """Replace every row by ``rows`` (a snapshot restored; not undoable).

        >>> t = Table("balances"); t.load({"a1": 5}); t.get("a1"), len(t)
        (5, 1)
        """
        self._rows.clear()  # the same dict: ``get`` stays bound to it
        self._rows.update(rows)

    def _restore(self, key: Any, old: Any) -> None:
        if old is _MISSING:
            self._rows.pop(key, None)
        elif old is _APPENDED:
            self._rows[key].pop()
        else:
            self._rows[key] = old


def rollback(undo: UndoLog, to: int = 0) -> None:
    """Undo writes logged after index ``to``, newest first."""
    while len(undo) > to:
        table, key, old = undo.pop()
        table._restore(key, old)


def _field(row: Any, name: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(name)
    return getattr(row, name, None)


class Progress:
    """Which global positions are done: all up to ``watermark``, plus a sparse set above it.

    >>> p = Progress()
    >>> for pos in (1, 3, 2): p.add(pos)
    >>> p.watermark, p.contains(3), p.contains(4)
    (3, True, False)
    """

    __slots__ = ("above", "watermark")

    def __init__(self, watermark: int = 0) -> None:
        self.watermark = watermark
        self.above: set[int] = set()

    def contains(self, position: int) -> bool:
        return position <= self.watermark or position in self.above

    def add(self, position: int) -> None:
        wm = self.watermark
        if position == wm + 1:
            above = self.above
            if above:
                nxt = position + 1
                while nxt in above:
                    above.remove(nxt)
                    nxt += 1
                self.watermark = nxt - 1
            else:
                self.watermark = position
        elif position > wm:
            self.above.add(position)

    def raise_to(self, ceiling: int) -> None:
        """Every position up to ``ceiling`` is done (and any above it that now join it).

        >>> p = Progress(); p.add(7); p.raise_to(5); p
        Progress(watermark=5, above=[7])
        >>> p.raise_to(6); p.watermark
        7
        """
        if ceiling <= self.watermark:
            return
        self.watermark = ceiling
        above = self.above
        if above:
            self.above = above = {p for p in above if p > ceiling}
            nxt = ceiling + 1
            while nxt in above:
                above.remove(nxt)
                nxt += 1
            self.watermark = nxt - 1

    def copy(self) -> Progress:
        twin = Progress(self.watermark)
        twin.above = set(self.above)
        return twin

    def restore(self, other: Progress) -> None:
        self.watermark = other.watermark
        self.above = set(other.above)

    def __repr__(self) -> str:
        return f"Progress(watermark={self.watermark}, above={sorted(self.above)})"
