"""What the simulation's commands share: the scenario their arguments name (with ``--seed``,
``--duration`` and ``--rate`` applied, checked as a scenario file's keys are), strict JSON
for ``--json``, and a number read from a ``KEY=VALUE`` argument.

>>> number("4"), number("0.5"), number("fifo")
(4, 0.5, 'fifo')
>>> dumps({"mean": jsonable(float("nan")), "n": 3})
'{"mean": null, "n": 3}'
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.builtin import resolve_scenario
from cqrs_lab.sim.scenario import Scenario
from cqrs_lab.sim.sweep_params import apply_param

__all__ = ["dumps", "jsonable", "note_mix", "number", "scenario_from_args"]


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    """The scenario ``args.scenario`` names (a file or a packaged name), with the command's
    ``--seed``, ``--duration`` and ``--rate``; an ``--out`` that is a file is refused."""
    out = getattr(args, "out", None)
    if out and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; give a folder for the tables")
    s = resolve_scenario(args.scenario)
    note_mix(s, f"cqrs-lab {getattr(args, 'command', 'simulate')}")
    # --seed, --duration and --rate are checked as the scenario file's keys are
    if args.seed is not None:
        s = apply_param(s, "seed", args.seed)
    if args.duration is not None:
        if args.duration > 0:
            s = s.with_(bucket=min(s.bucket, args.duration))
        s = apply_param(s, "duration", args.duration)
    rate = getattr(args, "rate", None)
    return apply_param(s, "rate", rate) if rate is not None else s


def note_mix(s: Scenario, prog: str) -> None:
    """Say once on stderr that mix weights not summing to 1 are run as proportions."""
    total = math.fsum(w for _, w in s.workload.mix)
    if s.workload.mix and not math.isclose(total, 1.0):
        shares = ", ".join(f"{k} {w / total:.3g}" for k, w in s.workload.mix)
        print(
            f"{prog}: note: the workload.mix weights sum to {total:g}, not 1; "
            f"normalised to {shares}",
            file=sys.stderr,
        )


def jsonable(v: Any) -> Any:
    """A value strict JSON can hold: NaN (no value) and an unbounded interval end are null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return jsonable(v.item())
    return v


def dumps(obj: Any) -> str:
    """Strict JSON (no NaN or Infinity tokens, which strict parsers reject)."""
    return json.dumps(obj, allow_nan=False)


def number(text: str) -> Any:
    """``text`` as an int, else a float, else itself (a setting's value on the command line)."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text
