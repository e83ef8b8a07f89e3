"""``cqrs-lab sweep`` and ``cqrs-lab plan``: a grid of scenario settings run with
replications, and the least setting of one knob that meets a target (see
:mod:`cqrs_lab.sim.cli` for the commands' options)."""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import Any

from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.cli_common import dumps, jsonable, number, scenario_from_args
from cqrs_lab.sim.planner import plan
from cqrs_lab.sim.scenario import Scenario
from cqrs_lab.sim.sweep import sweep
from cqrs_lab.sim.sweep_params import apply_param
from cqrs_lab.sim.units import for_display

__all__ = ["run_plan", "run_sweep"]


def _grid(params: list[str]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for p in params:
        key, sep, values = p.partition("=")
        if not sep or not values:
            raise ConfigError(f"--param {p!r}: write KEY=V1,V2,... e.g. commands.handlers=2,4,8")
        if key.strip() in grid:
            raise ConfigError(
                f"--param {p!r}: {key.strip()} is given twice; list all its values in one, "
                f"e.g. {key.strip()}=1,2,4"
            )
        grid[key.strip()] = [number(v.strip()) for v in values.split(",")]
    return grid


def run_sweep(args: argparse.Namespace) -> int:
    scenario = scenario_from_args(args)
    metrics = tuple(args.metrics.split(",")) if args.metrics else None
    df = sweep(
        scenario,
        _grid(args.param),
        replications=args.replications,
        metrics=metrics,
        n_jobs=args.jobs,
        backend=args.backend,
    )
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        df.to_csv(Path(args.out) / "sweep.csv", index=False)
    if args.json:
        print(dumps([{k: jsonable(v) for k, v in r.items()} for r in df.to_dict("records")]))
    else:  # the CSV and JSON keep seconds; a person reads ms, with the unit in the header
        print(for_display(df).to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    return 0


_TARGET = re.compile(r"^\s*([a-z0-9_]+)\s*<\s*([0-9.eE+-]+)\s*$")


def _fixed(scenario: Scenario, settings: list[str], knob: str) -> Scenario:
    """``scenario`` with each ``--set KEY=VALUE``, checked as ``sweep --param`` is; a key
    set twice, or the knob the plan searches, is refused (the last would win silently)."""
    seen: set[str] = set()
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not value.strip() or "," in value:
            raise ConfigError(
                f"--set {item!r}: write KEY=VALUE (one value), e.g. "
                "projections.balances.crash.ttf=600"
            )
        key = key.strip()
        if key in seen:
            raise ConfigError(f"--set {item!r}: {key} is set twice; set it once")
        if key == knob:
            raise ConfigError(
                f"--set {item!r}: {key} is the knob the plan searches (--knob); bound the "
                "search with --max instead"
            )
        seen.add(key)
        scenario = apply_param(scenario, key, number(value.strip()))
    return scenario


def run_plan(args: argparse.Namespace) -> int:
    m = _TARGET.match(args.target)
    if m is None:
        raise ConfigError(f"--target {args.target!r}: write METRIC<LIMIT, e.g. 'lag_p99_s<0.5'")
    try:
        limit = float(m.group(2))
    except ValueError:
        limit = math.nan
    if not limit > 0:
        raise ConfigError(f"--target {args.target!r}: the limit is seconds > 0, e.g. 0.2")
    scenario = _fixed(scenario_from_args(args), args.set, args.knob)
    p = plan(
        scenario,
        knob=args.knob,
        metric=m.group(1),
        limit=limit,
        high=args.max,
        replications=args.replications,
        max_replications=args.max_replications,
        confidence=args.confidence,
        n_jobs=args.jobs,
        backend=args.backend,
    )
    for note in p.notes:
        print(f"cqrs-lab plan: note: {note}", file=sys.stderr)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        p.probes.to_csv(Path(args.out) / "plan_probes.csv", index=False)
    if args.json:
        print(
            dumps(
                {
                    "knob": p.knob,
                    "value": p.value,
                    "metric": p.metric,
                    "limit": p.limit,
                    "mean": jsonable(p.mean),
                    "ci_low": jsonable(p.ci_low),
                    "ci_high": jsonable(p.ci_high),
                    "confidence": p.confidence,
                    "replications": p.replications,
                    "lower_bound": p.lower_bound,
                    "notes": list(p.notes),
                    "probes": [
                        {k: jsonable(v) for k, v in r.items()} for r in p.probes.to_dict("records")
                    ],
                }
            )
        )
    else:
        print("\n".join(x for x in p.describe().splitlines() if not x.startswith("note: ")))
        print(for_display(p.probes).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    return 0 if p.value is not None else 1
