"""Is the load generator, not the server, what limited a run? One rule, used by ``loadtest``
(its summary) and the twin (its regimes and its refusal to calibrate from such a run).

An open-model run is **generator-bound** when Locust could not keep to its schedule:

- the p95 of its sends' lateness (how far behind the intended send time a scheduled
  request went out) is over :data:`LATE_P95_BOUND_S` (25 ms: one garbage collection or one
  slow answer delays a send a little; a p95 that far behind means the generator was short
  of CPU for a good part of the run);
- it sent under :data:`SENT_SHARE_BOUND` (90%) of the commands/s it aimed at;
- or its processes used over :data:`CPU_BOUND` (90%) of a core each on average (Locust is
  one gevent loop per process: near a full core it can no longer keep time).

Sends late or short while the users were **held by the server** are the server's doing,
not the generator's (a Locust user whose request is still in flight cannot send on time):
held when at least :data:`BUSY_SHARE` of the users were waiting for an answer on average
(Little's law: requests/s times their mean latency, over the users), or when the sends'
lateness p95 was no longer than the median answer. A server that fell behind is then
judged as what it is, saturated, instead of being set aside as generator-bound. Over
:data:`CPU_BOUND` the generator is short of CPU whatever else held it.

The rate ``--rate`` counts **user tasks started per second**: a writer's task is one
command, a reader's one read, a session user's a command and two reads.
:func:`per_task` turns it into commands/s and requests/s for the chosen user classes.

>>> generator_bound(late_p95_s=0.040, sent_per_s=100.0, aimed_per_s=100.0)
'sends late: lateness p95 40.0 ms > 25 ms'
>>> generator_bound(late_p95_s=0.001, sent_per_s=80.0, aimed_per_s=100.0)
'sent 80.0 of the 100.0 commands/s aimed at (< 90%)'
>>> generator_bound(late_p95_s=0.001, sent_per_s=100.0, aimed_per_s=100.0, cpu=0.95)
'generator CPU 0.95 cores per Locust process (> 0.9)'
>>> generator_bound(late_p95_s=0.001, sent_per_s=100.0, aimed_per_s=100.0, cpu=0.2)
''
>>> generator_bound(late_p95_s=0.3, sent_per_s=70.0, aimed_per_s=100.0, busy_share=0.6)
''
>>> per_task(("WriterUser", "ReaderUser", "SessionUser"))
(0.6, 1.2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "BUSY_SHARE",
    "CLASS_WEIGHTS",
    "CPU_BOUND",
    "LATE_P95_BOUND_S",
    "POISSON_SIGMAS",
    "SENT_SHARE_BOUND",
    "generator_bound",
    "held_by_server",
    "per_task",
    "waiting_share",
]

#: p95 of the scheduled sends' lateness above which the generator fell behind (seconds)
LATE_P95_BOUND_S = 0.025
#: share of the aimed-at commands/s under which the generator did not send the load
SENT_SHARE_BOUND = 0.9
#: a shortfall of the commands sent counts beyond this many Poisson standard deviations
POISSON_SIGMAS = 3.0
#: cores per Locust process above which the generator is short of CPU
CPU_BOUND = 0.9
#: share of the users waiting for an answer at or above which the server held them
BUSY_SHARE = 0.1

#: the packaged user classes: (Locust weight, commands per task, requests per task)
CLASS_WEIGHTS = {
    "WriterUser": (5, 1, 1),
    "ReaderUser": (4, 0, 1),
    "SessionUser": (1, 1, 3),
}


def per_task(classes: Sequence[str]) -> tuple[float, float]:
    """(commands, requests) per user task, on average over ``classes`` by their weights
    (a session user's reads happen only when its command was accepted)."""
    known = [CLASS_WEIGHTS[c] for c in classes if c in CLASS_WEIGHTS]
    total = sum(w for w, _, _ in known)
    if not total:
        return (float("nan"), float("nan"))
    return (
        round(sum(w * c for w, c, _ in known) / total, 6),
        round(sum(w * r for w, _, r in known) / total, 6),
    )


def generator_bound(
    late_p95_s: float,
    sent_per_s: float,
    aimed_per_s: float,
    cpu: float = float("nan"),
    processes: int = 1,
    window_s: float = float("nan"),
    busy_share: float = float("nan"),
    latency_p50_s: float = float("nan"),
) -> str:
    """Why the generator limited the run ('' when it did not): ``late_p95_s`` is the p95 of
    the sends' lateness (s), ``sent_per_s`` and ``aimed_per_s`` the commands/s sent and
    aimed at (NaN: closed model, not judged), ``cpu`` the cores all Locust processes used
    on average and ``processes`` how many there were. ``window_s``, the seconds the rates
    were counted over: open-model arrivals are Poisson, so over a short window a shortfall
    counts only beyond :data:`POISSON_SIGMAS` standard deviations of the count aimed at
    (3 s at 40 commands/s: 120 aimed at, 98 sent is noise, not a generator that fell short).
    ``busy_share`` and ``latency_p50_s`` say whether the server held the users
    (:func:`held_by_server`; NaN: not known, the generator is blamed).

    >>> generator_bound(0.001, sent_per_s=32.7, aimed_per_s=40.0, window_s=3.0)
    ''
    >>> generator_bound(0.001, sent_per_s=32.7, aimed_per_s=40.0, window_s=60.0)
    'sent 32.7 of the 40.0 commands/s aimed at (< 90%)'
    >>> generator_bound(0.3, 70.0, 100.0, cpu=0.95, busy_share=0.6)[:13]
    'generator CPU'
    """
    per_process = cpu / max(1, processes)
    if not math.isnan(per_process) and per_process > CPU_BOUND:
        return f"generator CPU {per_process:.2f} cores per Locust process (> {CPU_BOUND:g})"
    why = ""
    aimed = not math.isnan(aimed_per_s) and aimed_per_s > 0
    if not math.isnan(late_p95_s) and late_p95_s > LATE_P95_BOUND_S:
        why = (
            f"sends late: lateness p95 {late_p95_s * 1e3:.1f} ms > {LATE_P95_BOUND_S * 1e3:.0f} ms"
        )
    elif (
        aimed
        and sent_per_s < SENT_SHARE_BOUND * aimed_per_s
        and _beyond_noise(sent_per_s, aimed_per_s, window_s)
    ):
        why = (
            f"sent {sent_per_s:.1f} of the {aimed_per_s:.1f} commands/s aimed at "
            f"(< {SENT_SHARE_BOUND:.0%})"
        )
    if why and held_by_server(busy_share, late_p95_s, latency_p50_s):
        return ""  # the users were waiting for answers: the server's doing
    return why


def held_by_server(busy_share: float, late_p95_s: float, latency_p50_s: float) -> bool:
    """Were the users held by the server's answers (module docstring)? NaN: no.

    >>> held_by_server(0.05, 0.030, 0.002), held_by_server(0.12, 0.030, 0.002)
    (False, True)
    >>> held_by_server(float("nan"), 0.030, 0.040)  # late no longer than the median answer
    True
    """
    return bool(busy_share >= BUSY_SHARE or late_p95_s <= latency_p50_s)


def waiting_share(requests_per_s: float, mean_latency_s: float, users: int) -> float:
    """The share of the users waiting for an answer on average (Little's law).

    >>> waiting_share(2000.0, 0.05, 200)
    0.5
    """
    return requests_per_s * mean_latency_s / max(1, users)


def _beyond_noise(sent_per_s: float, aimed_per_s: float, window_s: float) -> bool:
    """Whether sending ``sent_per_s`` instead of ``aimed_per_s`` over ``window_s`` seconds
    is more than Poisson noise (True when the window is unknown)."""
    if math.isnan(window_s) or window_s <= 0:
        return True
    aimed_n = aimed_per_s * window_s
    return aimed_n - sent_per_s * window_s > POISSON_SIGMAS * math.sqrt(aimed_n)
