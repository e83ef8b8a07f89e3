"""A CPU whose speed wanders: the factor by which an event loop's work costs more or less
than its calibrated cost at each moment (``[server] speed_sd`` and ``speed_time``).

On a shared machine the same work does not cost the same CPU from one moment to the next:
measured on this 2-core machine, the server's calls that came right after other work cost
18 to 25% more or less (the sd of the log) in one 50 ms stretch than in another, and a
slow stretch lasts from a few tens to a few hundreds of milliseconds, at every load from a
tenth of the knee up (a neighbour on the same physical core, the host's own work; the
run-to-run drift of a few percent is slower still). Items drawn independently cannot slow
down together; under a CPU limit near saturation a slow stretch is what builds a queue.
It is the machine's: the loops of several server processes share one.


:class:`LoopSpeed` is the log of that factor as an Ornstein-Uhlenbeck process: standard
deviation ``sd``, time constant ``time`` (correlation ``exp(-dt / time)`` across ``dt``
seconds), drawn in advance on a grid of :data:`STEP` seconds over the run's ``duration``
from its own random stream (the same stretches at the same moments whatever the load, so
two rates differ by their load, not by their luck), and divided by its own mean over the
run (the calibrated costs keep their mean: a run's CPU is the calibration's, not a few
percent off by the draw).

>>> import random
>>> speed = LoopSpeed(0.2, 0.3, random.Random(1), duration=60.0)
>>> factors = [speed.factor(t * 0.001) for t in range(60_000)]
>>> round(sum(factors) / len(factors), 4)  # mean one over the run
1.0
>>> round(min(factors), 2), round(max(factors), 2)
(0.48, 2.06)
>>> LoopSpeed(0.0, 0.3, random.Random(1), duration=60.0).factor(5.0)  # sd 0: constant
1.0
"""

from __future__ import annotations

import math
import random
from array import array

from cqrs_lab.errors import ConfigError

__all__ = ["CONSTANT_TIME", "MAX_POINTS", "STEP", "LoopSpeed"]

#: the time constant (seconds) given when none is measured (a constant speed: sd 0)
CONSTANT_TIME = 0.3

#: the grid (seconds) on which the speed is drawn, at most (a tenth of ``time`` if shorter)
STEP = 0.005
#: the most points drawn for a run (a longer run's grid is coarser: 16 MB at most)
MAX_POINTS = 2_000_000


class LoopSpeed:
    """The factor on a loop's CPU costs at each moment of a run of ``duration`` seconds
    (module docstring); past the end of the run it stays at the last value."""

    def __init__(self, sd: float, time: float, rng: random.Random, duration: float) -> None:
        if not (math.isfinite(sd) and sd >= 0.0):
            raise ConfigError(f"speed_sd={sd!r}: the log speed's standard deviation, >= 0")
        if not (math.isfinite(time) and time > 0.0):
            raise ConfigError(f"speed_time={time!r}: the log speed's time constant in seconds, > 0")
        if not (math.isfinite(duration) and duration > 0.0):
            raise ConfigError(f"duration={duration!r}: the run's seconds, > 0")
        n = max(1, min(MAX_POINTS, math.ceil(duration / min(STEP, time / 10.0))))
        self.step = duration / n
        self.path = array("d", bytes(8 * n)) if sd > 0.0 else array("d", [1.0])
        if sd == 0.0:
            return
        keep = math.exp(-self.step / time)
        fresh = math.sqrt(1.0 - keep * keep) * sd
        log = rng.gauss(0.0, sd)  # stationary from the start
        for i in range(n):
            self.path[i] = math.exp(log)
            log = keep * log + fresh * rng.gauss(0.0, 1.0)
        mean = math.fsum(self.path) / n
        for i in range(n):
            self.path[i] /= mean

    def factor(self, now: float) -> float:
        """The cost factor at ``now`` (seconds)."""
        return self.path[min(max(int(now / self.step), 0), len(self.path) - 1)]
