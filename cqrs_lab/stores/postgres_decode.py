"""A page of the global order as one row: the statement that reads it, and its decoding.

The catch-up's read path (``read_all`` and ``read_all_pages`` of
:class:`~cqrs_lab.stores.postgres.PostgresEventStore`). The server sends a page of the log (at
most ``%(limit)s`` events after ``%(after)s``, in position order) as **one row** of a dozen
values, each holding one column of the page (:func:`page_sql`):

* the integers and floats of each column packed into one ``bytea`` (``string_agg`` of
  ``int8send``/``int4send``/``float8send``: 8 or 4 big-endian bytes each, what the binary
  format sends), unpacked by :mod:`array` in one call;
* the strings of a column joined with NUL, which a PostgreSQL text value cannot hold, in one
  ``bytea`` (``textsend``: in the connection's encoding), split in one call;
* the JSON payloads joined with NUL too, parsed by ``orjson`` in one call as one array where
  it reads them as :mod:`json` does (see :func:`_payload_sources`), else text by text;
* the nullable ids as arrays, the metadata only where it is not ``{}`` (with its positions).

So the client holds a dozen values per page instead of a tuple of eleven per event, and the
envelopes are made column by column in C (``map`` over ``zip``): Python code runs once per
event only to build its payload into its class (:func:`payload_builder`). Every envelope field
has the Python type the row-by-row read gives (``int``, ``float``, ``str``, ``None``; floats
bit for bit), and anything the fast path does not decode (a type the registry does not know,
an older schema version, a payload that does not fit its class) goes in stored form to the
caller's ``fallback``, as ``stored_envelope`` gives it.

The aggregates have no ``ORDER BY`` of their own (sorting each column apart cost the server
3 to 5 times as much): one aggregation step reads the ordered subquery's rows in turn and feeds each
to every aggregate, so the columns stay aligned row by row. The positions are still checked to
increase, and a page whose positions do not is put back in order (it never happened), so the
order never rests on the executor alone. The safe reader's statement also returns the first
position that is not below the horizon (see :mod:`cqrs_lab.stores.postgres_reader`); the page
is cut before it (:func:`page_extent`), keeping exactly the rows the safe prefix keeps.

What it bought is measured in :mod:`cqrs_lab.stores.postgres_reader`.
"""

from __future__ import annotations

import codecs
import json
import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any, Literal

import orjson

from cqrs_lab.core import Envelope, EventRegistry
from cqrs_lab.stores.postgres_payloads import build_payloads, payload_builder

__all__ = [
    "COLUMNS",
    "HORIZON",
    "NEW_ENVELOPE",
    "Loads",
    "build_envelopes",
    "decode_page",
    "loads_array",
    "page_columns",
    "page_extent",
    "page_sql",
    "payload_builder",
]  # fmt: skip

COLUMNS = (
    "event_id, stream_id, stream_version, position, type_name, schema_version, data, "
    "correlation_id, causation_id, recorded_at, metadata"
)

#: the oldest transaction still running, as the reader's statement sees it
HORIZON = "pg_snapshot_xmin(pg_current_snapshot())::xid"

# the page row: its count, the first position not below the horizon (NULL: none, or naive),
# then the page's columns; _EXTRAS: the positions of the events that have a correlation or
# causation id or metadata, and those (each column only for those events)
_COUNT, _UNSAFE, _EIDS, _SIDS, _TYPES, _DATA, _NUMBERS = range(7)
_EXTRAS, _CORRS, _CAUSES, _META = range(7, 11)

_TEXTS = "string_agg(textsend({}), '\\x00'::bytea)"  # NUL: never inside a text value
# per event 4 big-endian 8-byte numbers: stream version, position, schema version, recorded at
_NUMBERS_AGG = (
    "string_agg(int8send(stream_version) || int8send(position) || "
    "int8send(schema_version::bigint) || float8send(recorded_at), ''::bytea)"
)
_AGGREGATES = ", ".join([
    "count(*)", "{unsafe}", _TEXTS.format("event_id"), _TEXTS.format("stream_id"),
    _TEXTS.format("type_name"), _TEXTS.format("data"), _NUMBERS_AGG,
    "array_agg(position) FILTER (WHERE extra)",
    "array_agg(correlation_id) FILTER (WHERE extra)",
    "array_agg(causation_id) FILTER (WHERE extra)",
    "string_agg(metadata, ',') FILTER (WHERE extra)",
])  # fmt: skip
_EXTRA = "correlation_id IS NOT NULL OR causation_id IS NOT NULL OR metadata <> '{}' AS extra"


def page_sql(reader: Literal["safe", "naive"]) -> str:
    """The statement reading the page after ``%(after)s`` (at most ``%(limit)s`` events) as
    one row; run it in binary format.

    >>> "textsend(event_id)" in page_sql("safe") and "age(xmin)" in page_sql("safe")
    True
    >>> "age(xmin)" in page_sql("naive")
    False
    """
    safe = reader == "safe"
    unsafe = "min(position) FILTER (WHERE NOT below)" if safe else "NULL::bigint"
    below = f", age(xmin) > age((SELECT {HORIZON})) AS below" if safe else ""
    return (
        f"SELECT {_AGGREGATES.format(unsafe=unsafe)} FROM (SELECT {COLUMNS}{below}, {_EXTRA} "
        f"FROM events WHERE position > %(after)s ORDER BY position LIMIT %(limit)s) page"
    )


_SWAP = sys.byteorder == "little"  # the server sends big-endian


def _numbers(packed: bytes) -> memoryview:
    """The numbers column as 8-byte integers (4 per event; the 4th holds a float's bits)."""
    out = array("q", packed)
    if _SWAP:
        out.byteswap()
    return memoryview(out)


def _increasing(positions: list[int]) -> bool:
    """Whether ``positions`` (unique: the log's key) are in increasing order."""
    return positions == sorted(positions)


def page_extent(row: Sequence[Any] | None) -> tuple[int, int]:
    """How many of the page's events to keep (those before the first position that is not
    below the horizon; all of them for the naive reader) and the last kept position (0 for
    none): where the next page starts.

    >>> packed = b"".join(bytes(8) + p.to_bytes(8, "big") + bytes(16) for p in (10, 11, 12, 13))
    >>> page_extent((4, 12, b"", b"", b"", b"", packed) + (None,) * 4)
    (2, 11)
    >>> page_extent((4, None, b"", b"", b"", b"", packed) + (None,) * 4)
    (4, 13)
    >>> page_extent((0,) + (None,) * 10)
    (0, 0)
    """
    if row is None or not row[_COUNT]:
        return 0, 0
    positions = _numbers(row[_NUMBERS])[1::4].tolist()
    if not _increasing(positions):
        positions.sort()
    unsafe = row[_UNSAFE]
    n = len(positions) if unsafe is None else bisect_left(positions, unsafe)
    return n, positions[n - 1] if n else 0


def _texts(packed: bytes, encoding: str) -> list[Any]:
    """The JSON texts of a NUL-joined column, as bytes when UTF-8 (what orjson reads)."""
    if codecs.lookup(encoding).name == "utf-8":
        return packed.split(b"\x00")
    return packed.decode(encoding).split("\x00")


def _orjson_reads(packed: bytes) -> bool:
    """Whether orjson reads these JSON texts as :mod:`json` does, when it reads them at all:
    it reads an integer beyond 64 bits as a float, so not where a run of 19 digits or more
    is."""
    return b"0" * 19 not in packed.translate(_DIGITS_TO_ZERO)


def loads_array(text: str) -> list[Any]:
    """``json.loads(f"[{text}]")``: the JSON values of ``text`` (comma-separated), parsed by
    ``orjson`` where that gives the same objects, by :mod:`json` otherwise.

    ``orjson`` refuses what :mod:`json` accepts beyond the standard (``NaN``, ``Infinity``, a
    lone surrogate; then :mod:`json` parses the page) and reads an integer beyond 64 bits as a
    float: a text with a run of 19 digits or more, where such an integer could be, goes to
    :mod:`json` too.

    >>> loads_array('{"a": 1},{"b": [2.5, null]}')
    [{'a': 1}, {'b': [2.5, None]}]
    >>> loads_array('{"big": 123456789012345678901234567890, "nan": NaN}')
    [{'big': 123456789012345678901234567890, 'nan': nan}]
    """
    data = f"[{text}]".encode()
    if _orjson_reads(data):
        try:
            out: list[Any] = orjson.loads(data)
            return out
        except orjson.JSONDecodeError:
            pass
    parsed: list[Any] = json.loads(data)
    return parsed


_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")

_EMPTY: Mapping[str, Any] = {}


#: how a page's payloads are parsed: a JSON parser for each text, or None when the column holds
#: the parsed payloads already
Loads = Callable[[Any], Any] | None


def _payload_sources(
    row: Sequence[Any], encoding: str, whole: bool = True
) -> tuple[list[Any], Loads]:
    """The payloads column of a :func:`page_sql` row and how to parse it: the whole page parsed
    by ``orjson`` in one call where it reads the texts as :mod:`json` does (a JSON text never
    holds a raw NUL, so the NULs between texts become the commas of one array); otherwise
    the JSON texts, each for ``orjson`` where it reads them (see :func:`loads_array`) or for
    :mod:`json`. Parsing a page in one call took 20.7 ms against 25.9 ms text by text on W4's
    log, and spares splitting the column (8.5 ms)."""
    data = row[_DATA]
    if not _orjson_reads(data):
        return _texts(data, encoding), json.loads
    if whole and codecs.lookup(encoding).name == "utf-8":
        try:
            parsed: list[Any] = orjson.loads(b"[" + data.replace(b"\x00", b",") + b"]")
            if len(parsed) == row[_COUNT]:
                return parsed, None
        except orjson.JSONDecodeError:  # NaN, an infinity, a lone surrogate: text by text
            pass
    return _texts(data, encoding), orjson.loads


def page_columns(
    row: Sequence[Any], n: int, encoding: str = "utf-8", whole: bool = True
) -> tuple[list[list[Any]], Loads]:
    """The first ``n`` events of a :func:`page_sql` row (``n`` from :func:`page_extent`;
    ``encoding``: the connection's, ``conn.info.encoding``) as columns in the order of
    :class:`Envelope`'s fields, in position order, with the payloads' sources where the
    payloads go (event ids, stream ids, stream versions, positions, type names, schema
    versions, payload sources, correlation ids, causation ids, recorded at, metadata), and how
    to parse the sources (None: they are parsed already; see :func:`_payload_sources`;
    ``whole=False``: JSON texts, never the page parsed in one call)."""
    sources, loads = _payload_sources(row, encoding, whole)
    numbers = _numbers(row[_NUMBERS])
    positions = numbers[1::4].tolist()
    cols: list[list[Any]] = [
        row[_EIDS].decode(encoding).split("\x00"), row[_SIDS].decode(encoding).split("\x00"),
        numbers[0::4].tolist(), positions, row[_TYPES].decode(encoding).split("\x00"),
        numbers[2::4].tolist(), sources, numbers.cast("B").cast("d")[3::4].tolist(),
    ]  # fmt: skip
    if not _increasing(positions):  # back in position order (see the module docstring)
        order = sorted(range(len(positions)), key=positions.__getitem__)
        cols = [[col[i] for i in order] for col in cols]
    if n < len(positions):
        cols = [col[:n] for col in cols]
    positions = cols[3]
    metas: list[Mapping[str, Any]] = [_EMPTY] * n
    corrs: list[str | None] = [None] * n
    causes: list[str | None] = [None] * n
    if row[_EXTRAS] is not None:
        index = dict(zip(positions, range(n), strict=True))
        metas_of = loads_array(row[_META])
        extras = zip(row[_EXTRAS], row[_CORRS], row[_CAUSES], metas_of, strict=True)
        for position, corr, cause, meta in extras:
            at = index.get(position)
            if at is not None:
                corrs[at], causes[at], metas[at] = corr, cause, meta or _EMPTY
    return [*cols[:7], corrs, causes, cols[7], metas], loads


#: builds an envelope from its fields' values (the named tuple's own ``__new__`` is a Python
#: frame per event)
NEW_ENVELOPE = tuple.__new__


def build_envelopes(
    cols: list[list[Any]],
    loads: Loads,
    registry: EventRegistry,
    fallback: Callable[[Envelope], Envelope],
) -> list[Envelope]:
    """The envelopes of the events in columns as :func:`page_columns` gives them (or a slice
    of each): each payload built straight into its class when the registry knows its type at
    the stored schema version; any other event handed in stored form to ``fallback`` (which
    upcasts it, or keeps it stored)."""
    eids, sids, versions, positions, tnames, schemas, sources, corrs, causes, ats, metas = cols
    payloads, missed = build_payloads(tnames, schemas, sources, loads, registry)
    del sources
    out: list[Envelope] = list(map(NEW_ENVELOPE, repeat(Envelope), zip(
        eids, sids, versions, positions, tnames, schemas, payloads, corrs, causes, ats, metas,
        strict=True,
    )))  # fmt: skip
    for i in missed:
        out[i] = fallback(out[i])
    return out


def decode_page(
    row: Sequence[Any],
    n: int,
    registry: EventRegistry,
    fallback: Callable[[Envelope], Envelope],
    encoding: str = "utf-8",
) -> list[Envelope]:
    """The first ``n`` envelopes of a :func:`page_sql` row, all decoded at once (see
    :func:`page_columns` and :func:`build_envelopes`)."""
    cols, loads = page_columns(row, n, encoding)
    return build_envelopes(cols, loads, registry, fallback)
