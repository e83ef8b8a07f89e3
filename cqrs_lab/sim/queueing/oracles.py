"""Analytic queueing oracles: closed forms the simulation is checked against.

Every function takes rates per unit of time (arrivals per second, services per second per
server) and returns a frozen :class:`QueueMetrics` with the textbook steady-state figures:
utilisation, probability that an arrival waits, mean waiting time in queue ``wq``, mean time
in system ``w``, and mean numbers in queue and in system ``lq`` and ``l``.

* :func:`mm1`, :func:`mmc` (Erlang C) and :func:`mmck` (finite capacity, blocking) are exact.
* :func:`kingman` (G/G/1) and :func:`allen_cunneen` (G/G/c) are heavy-traffic approximations
  driven by the squared coefficients of variation of interarrival and service times.
* :func:`check_littles_law` checks ``L = lambda * W`` for named stages and says which one
  breaks it.

Erlang B and C use the stable recursion ``B(k) = a B(k-1) / (k + a B(k-1))`` and the
finite-capacity distribution is normalised in log space, so hundreds of servers are fine.

>>> round(mmc(3.2, 1.0, 4).wq, 5)
0.74554
>>> mm1(0.8, 1.0).wq
4.000000000000001
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from cqrs_lab.errors import ConfigError

__all__ = [
    "LittleCheck",
    "LittleReport",
    "QueueMetrics",
    "allen_cunneen",
    "check_littles_law",
    "erlang_b",
    "erlang_c",
    "kingman",
    "mm1",
    "mmc",
    "mmck",
]


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    """Steady-state figures of one queue (times in the rates' time unit).

    ``throughput`` is the rate of customers admitted (equal to the arrival rate unless the
    queue is bounded); ``p_block`` is the probability an arrival is turned away (0 when
    unbounded); ``p_wait`` the probability an admitted arrival has to queue; ``utilisation``
    the mean fraction of busy servers.

    >>> m = mm1(0.5, 1.0)
    >>> (m.utilisation, m.l, m.w)
    (0.5, 1.0, 2.0)
    """

    arrival_rate: float
    service_rate: float
    servers: int
    utilisation: float
    p_wait: float
    wq: float
    w: float
    lq: float
    l: float  # noqa: E741 - the textbook name for the mean number in system
    throughput: float
    p_block: float = 0.0
    capacity: int | None = None


def _rate(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _scv(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _stable(arrival_rate: float, service_rate: float, servers: int) -> float:
    rho = arrival_rate / (servers * service_rate)
    if rho >= 1.0:
        raise ConfigError(
            f"utilisation arrival_rate / (servers * service_rate) = {arrival_rate:g} / "
            f"({servers} * {service_rate:g}) = {rho:.6g} must be < 1 for an unbounded queue; "
            "lower arrival_rate, raise service_rate or servers, or bound the queue (mmck)"
        )
    return rho


def erlang_b(servers: int, offered_load: float) -> float:
    """Erlang B: blocking probability of M/M/c/c with offered load ``a = lambda / mu``.

    >>> round(erlang_b(2, 1.0), 6)
    0.2
    """
    c = _count("servers", servers, 1)
    a = _rate("offered_load", offered_load)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(servers: int, offered_load: float) -> float:
    """Erlang C: probability an arrival waits in M/M/c, offered load ``a = lambda / mu < c``.

    >>> round(erlang_c(1, 0.8), 6)
    0.8
    """
    c = _count("servers", servers, 1)
    a = _rate("offered_load", offered_load)
    rho = a / c
    if rho >= 1.0:
        raise ConfigError(
            f"offered_load / servers = {rho:.6g} must be < 1 for Erlang C; "
            "use fewer erlangs or more servers"
        )
    b = erlang_b(c, a)
    return b / (1.0 - rho * (1.0 - b))


def mmc(arrival_rate: float, service_rate: float, servers: int) -> QueueMetrics:
    """Exact steady state of M/M/c (Erlang C), unbounded FIFO queue.

    >>> round(mmc(3.2, 1.0, 4).p_wait, 4)
    0.5964
    """
    lam = _rate("arrival_rate", arrival_rate)
    mu = _rate("service_rate", service_rate)
    c = _count("servers", servers, 1)
    rho = _stable(lam, mu, c)
    pw = erlang_c(c, lam / mu)
    wq = pw / (c * mu - lam)
    w = wq + 1.0 / mu
    return QueueMetrics(lam, mu, c, rho, pw, wq, w, lam * wq, lam * w, lam)


def mm1(arrival_rate: float, service_rate: float) -> QueueMetrics:
    """Exact steady state of M/M/1: ``Wq = rho / (mu - lambda)``.

    >>> mm1(0.8, 1.0).lq
    3.200000000000001
    """
    return mmc(arrival_rate, service_rate, 1)


def mmck(arrival_rate: float, service_rate: float, servers: int, capacity: int) -> QueueMetrics:
    """Exact steady state of M/M/c/K: at most ``capacity`` customers in the system.

    Arrivals finding ``capacity`` customers present are blocked (lost). ``wq`` and ``w`` are
    for admitted customers, ``throughput = arrival_rate * (1 - p_block)``. Any utilisation
    is allowed, since the queue is bounded.

    >>> round(mmck(1.0, 1.0, 1, 1).p_block, 6)  # M/M/1/1 = Erlang B with a = 1
    0.5
    """
    lam = _rate("arrival_rate", arrival_rate)
    mu = _rate("service_rate", service_rate)
    c = _count("servers", servers, 1)
    k = _count("capacity", capacity, c)
    a = lam / mu
    # log of the unnormalised birth-death probabilities p_n / p_0
    logs = [0.0] * (k + 1)
    log_a = math.log(a)
    for n in range(1, k + 1):
        logs[n] = logs[n - 1] + log_a - math.log(min(n, c))
    top = max(logs)
    weights = [math.exp(x - top) for x in logs]
    total = math.fsum(weights)
    p = [x / total for x in weights]
    p_block = p[k]
    l_sys = math.fsum(n * pn for n, pn in enumerate(p))
    lq = math.fsum((n - c) * p[n] for n in range(c + 1, k + 1))
    busy = math.fsum(min(n, c) * pn for n, pn in enumerate(p))
    lam_eff = lam * (1.0 - p_block)
    p_wait = math.fsum(p[c:k]) / (1.0 - p_block) if k > c else 0.0
    return QueueMetrics(
        arrival_rate=lam,
        service_rate=mu,
        servers=c,
        utilisation=busy / c,
        p_wait=p_wait,
        wq=lq / lam_eff,
        w=l_sys / lam_eff,
        lq=lq,
        l=l_sys,
        throughput=lam_eff,
        p_block=p_block,
        capacity=k,
    )


def kingman(arrival_rate: float, service_rate: float, ca2: float = 1.0, cs2: float = 1.0) -> float:
    """Kingman's G/G/1 approximation of the mean wait in queue.

    ``Wq ~ rho / (1 - rho) * (ca2 + cs2) / 2 * (1 / mu)``, where ``ca2`` and ``cs2`` are the
    squared coefficients of variation of interarrival and service times (1 for exponential,
    0 for deterministic). Exact for M/M/1 and M/G/1 with Poisson arrivals (ca2 = 1).

    >>> kingman(0.8, 1.0)  # M/M/1
    4.000000000000001
    >>> kingman(0.8, 1.0, ca2=1.0, cs2=0.0)  # M/D/1, Pollaczek-Khinchine
    2.0000000000000004
    """
    lam = _rate("arrival_rate", arrival_rate)
    mu = _rate("service_rate", service_rate)
    rho = _stable(lam, mu, 1)
    return rho / (1.0 - rho) * (_scv("ca2", ca2) + _scv("cs2", cs2)) / 2.0 / mu


def allen_cunneen(
    arrival_rate: float, service_rate: float, servers: int, ca2: float = 1.0, cs2: float = 1.0
) -> float:
    """Allen-Cunneen G/G/c approximation: Erlang C's ``Wq`` scaled by ``(ca2 + cs2) / 2``.

    >>> round(allen_cunneen(3.2, 1.0, 4), 5)
    0.74554
    """
    base = mmc(arrival_rate, service_rate, servers).wq
    return base * (_scv("ca2", ca2) + _scv("cs2", cs2)) / 2.0


@dataclass(frozen=True, slots=True)
class LittleCheck:
    """Little's law ``L = lambda * W`` for one stage, with the relative error found."""

    stage: str
    l: float  # noqa: E741 - the textbook name
    arrival_rate: float
    w: float
    rel_error: float
    ok: bool

    def describe(self) -> str:
        """One line: the stage, both sides and the relative error."""
        verdict = "ok" if self.ok else "VIOLATED"
        return (
            f"{self.stage}: L = {self.l:.6g}, lambda * W = {self.arrival_rate:.6g} * "
            f"{self.w:.6g} = {self.arrival_rate * self.w:.6g}, relative error "
            f"{self.rel_error:.3%} ({verdict})"
        )


@dataclass(frozen=True, slots=True)
class LittleReport:
    """The checks of every stage; ``ok`` when none is violated.

    >>> r = check_littles_law({"queue": (2.0, 1.0, 2.0), "service": (1.0, 1.0, 2.0)})
    >>> (r.ok, [c.stage for c in r.violations])
    (False, ['service'])
    """

    checks: tuple[LittleCheck, ...]
    rel_tol: float

    @property
    def violations(self) -> tuple[LittleCheck, ...]:
        """The stages whose relative error exceeds the tolerance."""
        return tuple(c for c in self.checks if not c.ok)

    @property
    def ok(self) -> bool:
        """True when every stage satisfies Little's law within the tolerance."""
        return not self.violations

    def describe(self) -> str:
        """A multi-line report, one line per stage."""
        return "\n".join(c.describe() for c in self.checks)


def check_littles_law(
    stages: Mapping[str, tuple[float, float, float]], rel_tol: float = 0.02
) -> LittleReport:
    """Check ``L = lambda * W`` for each stage given as ``name -> (L, lambda, W)``.

    The relative error is ``|L - lambda W| / max(L, lambda W)`` (0 when both are 0); a stage
    violates the law when it exceeds ``rel_tol``.

    >>> check_littles_law({"system": (4.0, 0.8, 5.0)}).ok
    True
    """
    tol = _scv("rel_tol", rel_tol)
    if not stages:
        raise ConfigError("stages must name at least one stage: {name: (L, lambda, W)}")
    checks = []
    for name, triple in stages.items():
        if len(triple) != 3:
            raise ConfigError(f"stage {name!r} must be a triple (L, lambda, W), got {triple!r}")
        l_val, lam, w = (
            _scv(f"stage {name!r} {f}", v)
            for f, v in zip(("L", "lambda", "W"), triple, strict=True)
        )
        rhs = lam * w
        scale = max(l_val, rhs)
        err = abs(l_val - rhs) / scale if scale > 0 else 0.0
        checks.append(LittleCheck(name, l_val, lam, w, err, err <= tol))
    return LittleReport(tuple(checks), tol)
