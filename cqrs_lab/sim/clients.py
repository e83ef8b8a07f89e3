"""The load generator's users: at most ``size`` requests in flight (``[server] clients``).

A load generator is not an open source of requests: each of its users sends one request
and waits for the answer before it can send another (``cqrs-lab loadtest`` runs a pool of
them, :meth:`cqrs_lab.load.options.LoadOptions.pool_size`). Below the server's capacity a
free user takes each scheduled send on time and nothing changes; past it every user waits
for an answer, and a send that finds none free waits for one (it is *late*: the generator
keeps at most ``size`` requests at the server, whose queue stays bounded). Without the pool
a simulated server past its capacity receives every arrival, and its queue and what it
sheds grow without bound, which no measured load test shows.

>>> import simpy
>>> env = simpy.Environment()
>>> pool = ClientPool(env, 2)
>>> sent = []
>>> for i in range(3):
...     pool.send(lambda i=i: sent.append(i))
>>> sent, pool.waiting_now
([0, 1], 1)
>>> pool.done()  # an answer frees a user: the waiting send goes
>>> sent, pool.offered, pool.waiting_now
([0, 1, 2], 3, 0)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy

__all__ = ["ClientPool"]


class ClientPool:
    """``size`` users shared by the commands and the reads: :meth:`send` a request (now,
    or once a user is free), :meth:`done` when its answer arrived. ``offered`` counts every
    send asked for, ``late_s`` the seconds sends waited for a user."""

    def __init__(self, env: simpy.Environment, size: int) -> None:
        self.env = env
        self.free = size
        self.waiting: deque[tuple[float, Callable[[], None]]] = deque()
        self.offered = 0
        self.late_s = 0.0

    @property
    def waiting_now(self) -> int:
        return len(self.waiting)

    def send(self, start: Callable[[], None]) -> None:
        """``start`` the request now if a user is free, else once one is (first come)."""
        self.offered += 1
        if self.free > 0:
            self.free -= 1
            start()
        else:
            self.waiting.append((self.env.now, start))

    def done(self) -> None:
        """A request's answer arrived: its user takes the longest-waiting send, if any."""
        if self.waiting:
            since, start = self.waiting.popleft()
            self.late_s += self.env.now - since
            start()
        else:
            self.free += 1
