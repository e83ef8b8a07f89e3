"""The bank with every command handler slowed by :data:`DELAY` seconds of blocking sleep, for
the knee's bounded real run: one event loop deciding at most 1 / DELAY commands/s (125/s)
reaches its knee at a rate a shared 2-core machine's generator sends with ease."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from cqrs_lab.domains.bank import domain as bank

#: seconds each command's handler blocks the server's event loop
DELAY = 0.008


def _slowed(handler: Any) -> Any:
    def slow(command: Any, uow: Any) -> Any:
        time.sleep(DELAY)  # the test's stand-in for an expensive decision
        return handler(command, uow)

    return slow


domain = replace(
    bank,
    description="the bank, each command 8 ms slower",
    handlers={cls: _slowed(h) for cls, h in bank.handlers.items()},
)
