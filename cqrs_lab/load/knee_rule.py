"""The knee rule: where a staircase of offered loads stops being followed, and the capacity
it shows. :func:`find_knee` applies it to a step table (one row per step, in the columns of
:func:`~cqrs_lab.load.knee.step_table`, which also judges whether the generator bound each
step: such steps are left out of what follows):

- a step **follows** when the commands the server finished (answered 2xx, refused or
  conflict, counted by completion time) reach :data:`FOLLOW` (95%) of the offered
  commands/s, within Poisson noise (:data:`POISSON_SIGMAS`);
- the **knee** is the first usable step that does not follow, after which no usable step
  follows again (one dip is noise, not a knee). The measured **capacity** is the plateau:
  the mean of the finished commands/s over the per-second samples of that step and the
  ones after it up to :data:`PLATEAU_SPAN` (1.5) times its offered load, with a Student t
  95% interval: the span over which the twin's capacity is taken too
  (:func:`~cqrs_lab.load.loop_twin.predicted_capacity`). Steps offered more are
  ``overload``: what the server finishes there (it falls as the overload deepens: work
  queued for clients that gave up, a loop crowded with connections) is reported beside the
  capacity, not averaged into it; where throughput fell past the knee (the
  last step that followed finished more than that interval), that step's finished
  commands/s and their interval are the capacity instead. A plateau whose last step
  finished over :data:`RISING` times its first and above that interval is still rising:
  no knee yet, unless steps offered past the plateau were measured and none of them
  finished above that interval either (the rise did not go on: one short step's noise;
  a ramp once went on 25 times past such a plateau, every step under it, and was
  judged "no knee yet" each time);
- no knee among the usable steps while some step was generator-bound, or a generator-bound
  step past the knee finishing more than the plateau: the result says ``generator-bound:
  capacity above X`` (X: the most commands/s the server finished in any step), never a
  knee.

>>> import pandas as pd
>>> steps = pd.DataFrame({"offered_per_s": [100.0, 150.0, 225.0, 338.0],
...     "finished_per_s": [100.0, 149.0, 200.0, 201.0], "finished_sd_per_s": [5.0] * 4,
...     "seconds": [10] * 4, "generator_bound": [False] * 4, "generator_bound_why": [""] * 4})
>>> k = find_knee(steps)
>>> round(k.capacity_per_s), k.generator_bound, k.ci_low < 200.5 < k.ci_high
(200, False, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cqrs_lab.load.generator import POISSON_SIGMAS
from cqrs_lab.sim.queueing.tdist import t_quantile

__all__ = [
    "FOLLOW",
    "PLATEAU_SPAN",
    "RISING",
    "SERVER_BUSY",
    "KneeResult",
    "find_knee",
    "step_follows",
]

#: share of the offered commands/s a step must finish to follow the load
FOLLOW = 0.95
#: a plateau whose last step finished this much more than its first is still rising
RISING = 1.1
#: the plateau: the knee's step and the steps offered up to this many times its load
PLATEAU_SPAN = 1.5
#: cores under which a saturated server was not limited by its own CPU time
SERVER_BUSY = 0.8


@dataclass
class KneeResult:
    """The measured knee: ``capacity_per_s`` (finished commands/s on the plateau, NaN when
    no knee was reached) with its 95% interval ``ci_low``..``ci_high``; ``steps`` (one row
    per step, :func:`~cqrs_lab.load.knee.step_table`'s columns plus ``segment`` and
    ``role``); whether the generator ran out of headroom first, and ``why`` in one
    sentence."""

    capacity_per_s: float
    ci_low: float
    ci_high: float
    steps: pd.DataFrame = field(repr=False)
    generator_bound: bool
    why: str

    @property
    def reached(self) -> bool:
        """Whether a knee was measured (not only a lower bound)."""
        return not math.isnan(self.capacity_per_s)


def step_follows(row: pd.Series) -> bool:
    """Whether a step's finished commands/s reach :data:`FOLLOW` of the offered ones, within
    the Poisson noise of the count over its window."""
    offered, done = float(row["offered_per_s"]), float(row["finished_per_s"])
    if done >= FOLLOW * offered:
        return True
    window = float(row.get("window_s", row["seconds"]))
    n = offered * window  # the Poisson noise of the count over the window
    return bool(n > 0 and (offered - done) * window <= POISSON_SIGMAS * n**0.5)


def find_knee(steps: pd.DataFrame) -> KneeResult:
    """The knee of a step table (rows in order of offered load; the columns of
    :func:`~cqrs_lab.load.knee.step_table`): see the module docstring for the rule. The
    returned ``steps`` gain a ``role``: ``follows``, ``dip`` (fell short, then followed
    again: noise), ``saturated`` (the knee and the plateau after it), ``overload`` (past
    the plateau's span), ``generator-bound``, or ``after`` (past a generator-bound step:
    not judged)."""
    steps = steps.sort_values("offered_per_s", kind="stable").reset_index(drop=True)
    usable = ~steps["generator_bound"].astype(bool).to_numpy()
    follows = np.array([step_follows(row) for _, row in steps.iterrows()], dtype=bool)
    roles = np.where(follows, "follows", "dip").astype(object)  # saturated: set below
    roles[~usable] = "generator-bound"
    idx = np.flatnonzero(usable)
    knee = next(
        (int(i) for k, i in enumerate(idx) if not follows[idx[k:]].any()), None
    )  # the first usable step short of the load after which no usable step follows
    # whatever held the generator back, the server did finish this many commands/s
    floor = float(steps["finished_per_s"].max()) if len(steps) else 0.0
    bound = bool((~usable).any())
    first = int(np.flatnonzero(~usable)[0]) if bound else 0
    lower = (
        f"capacity above {floor:.0f} commands/s (the generator bound from "
        f"{steps['offered_per_s'][first]:.0f} offered: {steps['generator_bound_why'][first]})"
        if bound
        else f"capacity above {floor:.0f} commands/s"
    )
    if knee is None:
        out = steps.assign(role=roles)
        if bound:
            return KneeResult(math.nan, floor, math.inf, out, True, f"generator-bound: {lower}")
        return KneeResult(
            math.nan, floor, math.inf, out, False,
            f"no knee: every step followed; {lower} (ramp higher)",
        )  # fmt: skip
    sat = np.zeros(len(steps), dtype=bool)
    sat[idx[idx >= knee]] = True
    offered = steps["offered_per_s"].to_numpy(dtype=float)
    over = sat & (offered > PLATEAU_SPAN * offered[knee] * (1 + 1e-9))
    sat &= ~over
    roles[sat] = "saturated"
    roles[over] = "overload"
    plateau = steps[sat]
    n = plateau["seconds"].to_numpy(dtype=float)
    mean_i = plateau["finished_per_s"].to_numpy(dtype=float)
    sd_i = plateau["finished_sd_per_s"].to_numpy(dtype=float)
    total = n.sum()
    mean = float((n * mean_i).sum() / total)
    ss = ((n - 1) * sd_i**2).sum() + (n * (mean_i - mean) ** 2).sum()
    sd = math.sqrt(ss / (total - 1)) if total > 1 else 0.0
    half = t_quantile(0.975, max(1, int(total) - 1)) * sd / math.sqrt(max(total, 1.0))

    def not_a_knee(generator_bound: bool, why: str) -> KneeResult:
        """The would-be plateau was not one: its steps are dips, the capacity a bound."""
        out = steps.assign(role=np.where(sat | over, "dip", roles))
        return KneeResult(math.nan, floor, math.inf, out, generator_bound, why)

    beyond = steps["finished_per_s"][(steps.index > knee) & ~usable]
    if len(beyond) and float(beyond.max()) > mean + half:  # a bound step finished more
        return not_a_knee(
            True,
            f"generator-bound: {lower}; a generator-bound step finished more than the "
            f"would-be plateau ({mean:.0f} commands/s): not a knee",
        )
    top = float(mean_i[-1])
    deeper = steps["finished_per_s"][over]  # the steps offered past the plateau
    goes_on = not len(deeper) or float(deeper.max()) > mean + half
    if len(mean_i) > 1 and top > mean + half and top > RISING * float(mean_i[0]) and goes_on:
        return not_a_knee(
            bound,
            f"no knee yet: finished commands/s still rising with the offered load ("
            f"{mean_i[0]:.0f} to {top:.0f}); capacity above {floor:.0f} commands/s",
        )
    below = steps.iloc[:knee][follows[:knee]]
    last = float(below["offered_per_s"].max()) if len(below) else math.nan
    why = (
        f"the knee: finished commands/s stop following the offered load between "
        f"{last:.0f} and {steps['offered_per_s'][knee]:.0f} offered; the plateau of "
        f"{len(plateau)} step(s), {int(total)} one-second samples"
    )
    capacity, lo, hi = mean, mean - half, mean + half
    if len(below) and float(below["finished_per_s"].iloc[-1]) > hi:  # it fell past the knee
        step = below.iloc[-1]
        m, k = float(step["finished_per_s"]), max(2, int(step["seconds"]))
        h = t_quantile(0.975, k - 1) * float(step["finished_sd_per_s"]) / math.sqrt(k)
        capacity, lo, hi = m, m - h, m + h
        why += (
            f": {mean:.0f} commands/s on average, under the {m:.0f} the last step that "
            f"followed finished (throughput falls under overload); the capacity is that step's"
        )
    if over.any():
        deep = steps[over]
        w = deep["seconds"].to_numpy(dtype=float)
        done = float((w * deep["finished_per_s"].to_numpy(dtype=float)).sum() / w.sum())
        why += (
            f"; offered more than {PLATEAU_SPAN:g} times the knee's load (up to "
            f"{deep['offered_per_s'].max():.0f}), the server finished {done:.0f} commands/s: "
            "overload, not part of the capacity"
        )
    cpu = float(plateau["server_cpu"].mean()) if "server_cpu" in plateau else math.nan
    limit = float(plateau["server_cpu_limit"].max()) if "server_cpu_limit" in plateau else math.nan
    cores = 1.0 if math.isnan(limit) else limit  # --server-cpus: its limit is all it has
    if cpu < SERVER_BUSY * cores:
        of = "its core" if math.isnan(limit) else f"the {limit:g} core(s) it was limited to"
        why += (
            f"; the server used {cpu:.2f} of {of} on the plateau: it waited for something "
            "else (on a shared machine: its CPU, taken by other processes)"
        )
    return KneeResult(capacity, lo, hi, steps.assign(role=roles), False, why)
