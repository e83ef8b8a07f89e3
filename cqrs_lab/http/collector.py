"""The served process's garbage collector policy (``cqrs-lab serve --gc-freeze-every``):
process-wide, so the entry point's (:mod:`cqrs_lab.http.cli`), never the app's."""

from __future__ import annotations

import gc

from cqrs_lab.core import Engine
from cqrs_lab.errors import StoreFailure

__all__ = ["CollectorFreezer"]


class CollectorFreezer:
    """The served process's collector policy (this entry point's, process-wide): once the
    app has started, ``gc.collect()`` and ``gc.freeze()`` (:meth:`start`); then
    ``gc.freeze()`` again each time the log has grown by ``every`` events (:meth:`tick`,
    called every half second). Full collections then stop walking the framework and the
    ever-growing log (measured: 100 ms pauses every half second under load without it);
    frozen objects are still freed by reference counting when they are dropped."""

    def __init__(self, engine: Engine, every: int) -> None:
        self.engine, self.every = engine, every
        self.frozen_at = 0

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        self.frozen_at = self._head()

    def tick(self) -> None:
        head = self._head()
        if head < 0:
            return
        if head - self.frozen_at >= self.every:
            gc.freeze()
            self.frozen_at = head

    def _head(self) -> int:
        """The log's head, or -1 when the store fails (the driver stops the server on it,
        exit 75: at start-up too, where uvicorn printed the error's traceback, exit 3)."""
        try:
            return self.engine.store.head_position
        except StoreFailure:
            return -1
