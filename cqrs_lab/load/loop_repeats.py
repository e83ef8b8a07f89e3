"""How much cheaper a piece of the served loop's work is right after one of its kind, from
the stage timings of one light level (``[server] transport_repeat``, ``request_repeat`` and
``command_repeat``: :mod:`cqrs_lab.sim.event_loop`).

Under load an event loop does its work in runs of like pieces: one turn reads every request
that arrived since the last (the transport's reads, one after another), the next runs those
requests' tasks, the writer's batch decides its commands one after another. A piece that
follows one of its own kind finds the interpreter's caches warm for it, and costs about
half (measured on this 2-core machine, in every level's runs from a tenth of the knee to
the knee alike: a command after a command 10 to 15 µs against 23 to 27 µs after other work;
a read of a request after a read 13 to 18 µs against 20 to 22 µs; a read-only request after
another request 52 to 85 µs against 94 to 148 µs after its own read). The factors do not
change with the load; how often a piece follows its kind does (a tenth of the calls at a
tenth of the knee, nearly all at the knee), and that is what the simulated loop produces.
Without it, calibrated where runs are rare, the twin's CPU per command fell too little as
the load grew, and its knee came 28% under the measured one.

:func:`repeat_factors` takes each kind's calls that came right after other work
(:data:`~cqrs_lab.load.loop_stages.WARM_GAP`), splits them by whether the work that ended
last before each began was of its kind, and divides the medians: the transport's reads
(``transport``), the engine's commands (``command``, a command after a command in a
writer batch) and the read-only requests (the ``request`` stage of a GET: routing, the
query and its answer; after a request against after the transport's read), which stand for
the CPU of every request outside the engine and the transport. A kind with fewer than
:data:`MIN_REPEATS` such repeats keeps 1 (no difference).

>>> rows = []
>>> for i in range(40):  # a read, then two commands: the second, right after the first, half
...     t = i * 0.01
...     rows += [("transport", "read", t, 20e-6), ("command", "A", t + 20e-6, 20e-6),
...              ("command", "A", t + 30e-6, 10e-6)]
>>> st = pd.DataFrame(rows, columns=["stage", "name", "at", "seconds"])
>>> st = st.assign(worker=0, start=st["at"] - st["seconds"])
>>> repeat_factors(st)
{'transport': 1.0, 'request': 1.0, 'command': 0.5}
>>> int(repeats(st).sum())  # the second command of each pair
40
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cqrs_lab.load.loop_stages import WARM_GAP

__all__ = ["MIN_REPEATS", "repeat_factors", "repeats"]

#: seconds by which work may end after the next one's computed start and still precede it
TOUCH = 5e-7
#: the fewest repeats (a piece right after one of its kind) a factor is measured on
MIN_REPEATS = 20


def repeat_factors(st: pd.DataFrame) -> dict[str, float]:
    """``{kind: factor}`` for ``transport``, ``request`` and ``command`` from timed work with
    ``worker`` and ``start`` (:func:`~cqrs_lab.load.loop_stages.idle_gaps`); see the module
    docstring."""
    prev, gap = _previous(st)
    stage = st["stage"].to_numpy(dtype=object)
    name = st["name"].astype(str).to_numpy(dtype=object)
    secs = st["seconds"].to_numpy(dtype=float)
    warm = np.nan_to_num(gap, nan=1.0) <= WARM_GAP
    read_only = (stage == "request") & np.array([n.startswith("GET ") for n in name], dtype=bool)
    prev_stage = np.array([stage[i] if i >= 0 else "" for i in prev], dtype=object)
    kinds = {
        "transport": (stage == "transport", prev_stage == "transport", prev_stage != "transport"),
        "request": (read_only, prev_stage == "request", prev_stage == "transport"),
        "command": (stage == "command", prev_stage == "command", prev_stage != "command"),
    }
    out: dict[str, float] = {}
    for kind, (mine, same, other) in kinds.items():
        after_same, after_other = secs[mine & warm & same], secs[mine & warm & other]
        ok = len(after_same) >= MIN_REPEATS and len(after_other) >= MIN_REPEATS
        ratio = float(np.median(after_same) / np.median(after_other)) if ok else 1.0
        out[kind] = round(ratio, 4) if np.isfinite(ratio) and ratio > 0 else 1.0
    return out


def repeats(st: pd.DataFrame) -> np.ndarray:
    """Which rows are a transport's read or a command right after one of their kind (the
    calibration takes a kind's own cost from the others; the simulation applies the factor
    to the repeats it produces)."""
    prev, gap = _previous(st)
    stage = st["stage"].to_numpy(dtype=object)
    prev_stage = np.array([stage[i] if i >= 0 else "" for i in prev], dtype=object)
    warm = np.nan_to_num(gap, nan=1.0) <= WARM_GAP
    same = np.asarray(prev_stage == stage, dtype=bool)
    kind = np.isin(stage, ("transport", "command"))
    out: np.ndarray = kind & same & warm
    return out


def _previous(st: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the row of the same worker's work that ended last at or before its
    start, within :data:`TOUCH` (a start taken as its end less its seconds rounds), -1:
    none, and the seconds between (NaN: none). Work that holds it (a writer batch
    its commands) ends after it and does not count."""
    prev = np.full(len(st), -1, dtype=np.int64)
    gap = np.full(len(st), np.nan)
    ends_all = st["at"].to_numpy(dtype=float)
    starts_all = st["start"].to_numpy(dtype=float)
    for found_rows in st.groupby("worker").indices.values():
        rows = np.asarray(found_rows, dtype=np.int64)  # positions in ``st``
        order = rows[np.argsort(ends_all[rows], kind="stable")]
        ends = ends_all[order]
        idx = np.searchsorted(ends, starts_all[rows] + TOUCH, side="right") - 1
        found = idx >= 0
        prev[rows[found]] = order[idx[found]]
        with np.errstate(invalid="ignore"):  # a damaged time (inf - inf): NaN, not warm
            gap[rows[found]] = np.maximum(starts_all[rows[found]] - ends[idx[found]], 0.0)
    return prev, gap
