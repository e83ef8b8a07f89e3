"""A page of the catch-up, decoded as it is iterated.

:meth:`~cqrs_lab.stores.postgres.PostgresEventStore.read_all_pages` yields :class:`Page`
objects: a page holds its events as the columns of the row the server sent
(:func:`~cqrs_lab.stores.postgres_decode.page_columns`: strings, numbers, the payloads parsed
or their JSON texts), and builds each
envelope and its payload only as the caller's loop reaches it, in C (``map`` over ``zip``, the
payload's class built by its :func:`~cqrs_lab.stores.postgres_payloads.payload_builder`).

Why: a page of a thousand envelopes built at once lives through the collector's young
collections while the caller works through it, and what survives them is promoted and, in
time, paid for by a full collection. Built as the loop reaches them, the envelopes the caller
does not keep die young. Measured on W4's log (95,291 events, pages of 1,000, folded into
balances, through the pipelined reader, in one process with the benchmark's peer loaded,
alternating 9 times, load average under 1): 159 ms against 204 ms with every page decoded at
once (:func:`~cqrs_lab.stores.postgres_decode.decode_page`), of which the collector 23 ms
against 67 ms.

A page is a :class:`~collections.abc.Sequence`: ``len``, indexing and slicing, iteration as
often as wanted (each pass builds its envelopes anew, from payloads of its own: the payloads
parsed with the page go to the first pass over the whole page, any other pass or index parses
the JSON texts again, so what one pass's upcasters or caller change never shows in another),
and ``==`` against another page or a list of envelopes. Events the quick path does not build
(a type the registry does not know at the stored schema version, a payload its class refuses,
a JSON text ``orjson`` refuses) go, from the first such event on, through the event-by-event
path :meth:`~cqrs_lab.stores.postgres.PostgresEventStore.read_all` uses, so a page's
envelopes are always those ``read_all`` gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from operator import call, length_hint
from typing import Any, overload

from cqrs_lab.core import Envelope, EventRegistry
from cqrs_lab.stores.postgres_decode import (
    NEW_ENVELOPE,
    Loads,
    build_envelopes,
    page_columns,
)
from cqrs_lab.stores.postgres_payloads import Builder, quick_builders

__all__ = ["Page"]

_POSITIONS, _TNAMES, _SCHEMAS, _SOURCES = 3, 4, 5, 6


class Page(Sequence[Envelope]):
    """The first ``n`` events of a :func:`~cqrs_lab.stores.postgres_decode.page_sql` row
    (``n`` from :func:`~cqrs_lab.stores.postgres_decode.page_extent`), decoded as they are
    iterated (see the module docstring); ``fallback`` decodes an event the quick path does not,
    as for :func:`~cqrs_lab.stores.postgres_decode.decode_page`."""

    __slots__ = ("_builders", "_cols", "_encoding", "_fallback", "_loads", "_registry", "_row",
                 "_texts", "_unused")  # fmt: skip

    def __init__(
        self,
        row: Sequence[Any],
        n: int,
        registry: EventRegistry,
        fallback: Callable[[Envelope], Envelope],
        encoding: str = "utf-8",
    ) -> None:
        self._cols, self._loads = page_columns(row, n, encoding)
        self._registry, self._fallback = registry, fallback
        self._builders = quick_builders(self._cols[_TNAMES], self._cols[_SCHEMAS], registry)
        self._unused = True  # the payloads parsed with the page not yet handed to a decode
        self._row, self._encoding = row, encoding
        self._texts: tuple[list[Any], Loads] | None = None  # the JSON texts, once split

    def __len__(self) -> int:
        return len(self._cols[_POSITIONS])

    @property
    def last_position(self) -> int:
        """The page's last global position (0 for an empty page), without decoding."""
        positions = self._cols[_POSITIONS]
        return positions[-1] if positions else 0

    def _sources(self, start: int, stop: int) -> tuple[list[Any], Loads]:
        """Events ``start`` to ``stop``'s payload sources for one decode, and how to parse
        them. The payloads parsed with the page go to one decode only, the first of the whole
        page (a builder or an upcaster may keep or change what it is given); any other decode
        parses the JSON texts again (split from the row once, on first need)."""
        if self._loads is not None:
            return self._cols[_SOURCES][start:stop], self._loads
        if self._unused and (start, stop) == (0, len(self)):
            self._unused = False
            return self._cols[_SOURCES], None
        if self._texts is None:
            cols, loads = page_columns(self._row, len(self), self._encoding, whole=False)
            self._texts = cols[_SOURCES], loads
        texts, loads = self._texts
        return texts[start:stop], loads

    def _decoded(
        self, start: int, stop: int, sources: tuple[list[Any], Loads] | None = None
    ) -> list[Envelope]:
        """Events ``start`` to ``stop``, event by event where the quick path does not build
        them (``sources``: theirs and how to parse them, when the caller holds them)."""
        cols = [col[start:stop] for col in self._cols]
        cols[_SOURCES], loads = self._sources(start, stop) if sources is None else sources
        return build_envelopes(cols, loads, self._registry, self._fallback)

    def __iter__(self) -> Iterator[Envelope]:
        if self._builders is None:
            return iter(self._decoded(0, len(self)))
        return self._streamed(self._builders)

    def _streamed(self, builders: dict[str, Builder]) -> Iterator[Envelope]:
        eids, sids, versions, positions, tnames, schemas, sources, corrs, causes, ats, metas = (
            self._cols
        )
        # a payload's source is read just before it is built, its correlation id just after:
        # a failure to build event k leaves k + 1 sources read and k correlation ids
        sources, loads = self._sources(0, len(sources))
        unread, later = iter(sources), iter(corrs)
        parsed = unread if loads is None else map(loads, unread)
        payloads = map(call, map(builders.__getitem__, tnames), parsed)
        built = map(NEW_ENVELOPE, repeat(Envelope), zip(
            eids, sids, versions, positions, tnames, schemas, payloads, later, causes, ats, metas,
            strict=True,
        ))  # fmt: skip
        try:
            yield from built
        except Exception:
            k = len(sources) - length_hint(unread) - 1
            if k != len(sources) - length_hint(later):
                raise  # thrown in at the yield by the caller, not a failure to build
            # event k refused: from k on, one by one (with this pass's sources)
            yield from self._decoded(k, len(sources), (sources[k:], loads))

    @overload
    def __getitem__(self, index: int) -> Envelope: ...

    @overload
    def __getitem__(self, index: slice) -> list[Envelope]: ...

    def __getitem__(self, index: int | slice) -> Envelope | list[Envelope]:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:
                return self._decoded(start, max(start, stop))
            return [self[i] for i in range(start, stop, step)]
        k = index + n if index < 0 else index
        if not 0 <= k < n:
            raise IndexError(f"page index {index} out of range for a page of {n} events")
        return self._decoded(k, k + 1)[0]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Page | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        positions = self._cols[_POSITIONS]
        span = f", positions {positions[0]}..{positions[-1]}" if positions else ""
        return f"<Page of {len(positions)} events{span}>"
