"""An opt-in collector setting for long simulation runs, for entry points to use.

A run allocates millions of short-lived objects that reference counting frees; the cyclic
collector's frequent young-generation passes cost a good part of the run for nothing. The
``cqrs-lab simulate``, ``sweep`` and ``plan`` commands (and the sweep's worker processes)
run inside :func:`fewer_collections`; a library call (``simulate()`` in a notebook or a
test) leaves the process's collector alone unless asked (``simulate(..., tune_gc=True)``).

>>> import gc
>>> before = gc.get_threshold()
>>> with fewer_collections():
...     gc.get_threshold()[0] > before[0]
True
>>> gc.get_threshold() == before
True
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["fewer_collections"]

_depth = 0


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run with the cyclic garbage collector rarely triggered (restored afterwards).

    Objects alive before (a notebook's earlier results: millions of objects a full
    collection would walk) are frozen out of the collector's scans meanwhile. Re-entrant:
    only the outermost use freezes and restores.
    """
    global _depth
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        gc.set_threshold(*old)
        gc.unfreeze()
