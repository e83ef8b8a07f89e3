"""The load generator's users: at most ``size`` requests in flight (``[server] clients``).

A load generator is not an open source of requests: each of its users sends one request
and waits for the answer before it can send another (``cqrs-lab loadtest`` runs a pool of
them, :meth:`cqrs_lab.load.options.LoadOptions.pool_size`). Below the server's capacity a
free user takes each scheduled send on time and nothing changes; past it every user waits
for an answer, and a send that finds none free waits for one (it is *late*: the generator
keeps at most ``size`` requests at the server, whose queue stays bounded). Without the pool
a simulated server past its capacity receives every arrival, and its queue and what it
sheds grow without bound, which no measured load test shows.

>>> pool = ClientPool(2)
>>> sent = []
>>> for i in range(3):
...     pool.send(lambda i=i: sent.append(i))
>>> sent, len(pool.waiting)
([0, 1], 1)
>>> pool.done()  # an answer frees a user: the waiting send goes
>>> sent, len(pool.waiting)
([0, 1, 2], 0)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["ClientPool"]


class ClientPool:
    """``size`` users shared by the commands and the reads: :meth:`send` a request (now,
    or once a user is free), :meth:`done` when its answer arrived."""

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiting: deque[Callable[[], None]] = deque()

    def send(self, start: Callable[[], None]) -> None:
        """``start`` the request now if a user is free, else once one is (first come)."""
        if self.free > 0:
            self.free -= 1
            start()
        else:
            self.waiting.append(start)

    def done(self) -> None:
        """A request's answer arrived: its user takes the longest-waiting send, if any."""
        if self.waiting:
            self.waiting.popleft()()
        else:
            self.free += 1
