"""``cqrs-lab simulate``, ``sweep``, ``plan`` and ``scenario-reference``.

These entry points run with the collector tuned for long runs (:func:`fewer_collections`):
a process-wide setting, so it lives here, never in the library calls they wrap.

``SCENARIO`` is a scenario file or the name of a packaged scenario (``baseline``;
``cqrs-lab scenarios`` lists them); with no scenario, ``simulate`` runs the packaged
baseline, so ``make demo`` needs nothing outside the package::

    cqrs-lab simulate --out results/demo
    cqrs-lab simulate burst_overload --seed 3 --json
    cqrs-lab sweep baseline --param projections.balances.consumers=1,2,4 -r 5
    cqrs-lab plan crashes_effectively_once --rate 2000 \\
        --knob projections.balances.consumers --target "lag_p99_s<0.5"
    cqrs-lab scenario-reference --out docs/scenario-reference.md
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from cqrs_lab.display import add_no_plots
from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.builtin import resolve_scenario
from cqrs_lab.sim.cli_common import dumps, jsonable, scenario_from_args
from cqrs_lab.sim.cli_sweep import run_plan, run_sweep
from cqrs_lab.sim.results import check_out_folder
from cqrs_lab.sim.scenario_reference import render
from cqrs_lab.sim.simulation import simulate
from cqrs_lab.sim.sweep import BACKENDS, DEFAULT_METRICS
from cqrs_lab.sim.units import for_display

__all__ = ["register", "resolve_scenario"]


def _with_unit(key: str, value: Any) -> str:
    """A summary value as a person reads it: times in milliseconds, rates per second."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "duration_s":
        return f"{value:g} s (simulated)"
    if key == "throughput_per_s":
        return f"{value:.1f} commands/s"
    if key.endswith("_per_s") and isinstance(value, int | float):
        return f"{value:.1f} /s"
    if key.endswith("_s") and isinstance(value, int | float):
        return f"{value * 1000:.2f} ms"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _print_table(df: pd.DataFrame, title: str) -> None:
    """``df`` for a person: durations in ms, clock times in s, the unit in each header."""
    if len(df):
        print(f"\n{title}")
        print(for_display(df).to_string(index=False, float_format=lambda x: f"{x:.6g}"))


def _simulate(args: argparse.Namespace) -> int:
    if args.out is not None:
        if not args.out.strip():
            raise ConfigError("--out '': name a folder for the tables and plots")
        check_out_folder(Path(args.out))
    scenario = scenario_from_args(args)
    result = simulate(scenario)
    summary = result.summary_dict()
    if args.out:
        written = result.save(args.out, figures=not args.no_plots)
    if args.json:
        print(dumps({k: jsonable(v) for k, v in summary.items()}))
    else:
        print(f"scenario {scenario.name} ({scenario.source}): {scenario.description}")
        width = max(map(len, summary))
        for key, value in summary.items():
            print(f"  {key:<{width}}  {_with_unit(key, value)}")
        _print_table(result.slo, "SLOs")
        _print_table(result.alerts, "burn-rate alerts")
        _print_table(result.incidents.head(30), "incidents (first 30)")
        if args.out:
            print(f"\nwrote {len(written)} files under {args.out}")
    _warn_failures(result.failures, sys.stdout if not args.json else sys.stderr)
    return 0


def _warn_failures(failures: pd.DataFrame, out: Any) -> None:
    """One warning line per projection whose handlers failed for real."""
    if len(failures):
        print("", file=out)
    for row in failures.itertuples():
        print(
            f"WARNING: projection {row.projection!r} failed on {row.dead_letters} events "
            f"(dead-lettered; its read model is missing them): {row.error}",
            file=out,
        )


_depth = 0


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run with the cyclic garbage collector rarely triggered (restored afterwards).

    A run allocates millions of short-lived objects that reference counting frees; the
    collector's frequent young-generation passes cost a good part of the run for nothing.

    Objects alive before (a notebook's earlier results: millions of objects a full
    collection would walk) are frozen out of the collector's scans meanwhile. Re-entrant:
    only the outermost use freezes and restores.
    """
    global _depth
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        gc.set_threshold(*old)
        gc.unfreeze()


def _tuned(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run an entry point with the collector tuned for long runs (restored afterwards)."""

    @functools.wraps(run)
    def tuned(args: argparse.Namespace) -> int:
        with fewer_collections():
            return run(args)

    return tuned


def _reference(args: argparse.Namespace) -> int:
    text = render()
    if args.out:
        out = Path(args.out)
        head = text.split("\n", 1)[0]
        if out.is_file() and out.stat().st_size and not out.read_bytes().startswith(head.encode()):
            raise ConfigError(
                f"--out {out}: exists and is not a scenario reference: left as it is; give a "
                "new file (an earlier reference is replaced)"
            )
        out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def _common(p: argparse.ArgumentParser, parallel: bool) -> None:
    p.add_argument(
        "scenario",
        nargs="?",
        default=None,
        help="a scenario TOML file, or a packaged scenario's name (`cqrs-lab scenarios` "
        "lists them; default: the packaged baseline)",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="override the scenario's seed (default: its own)"
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="simulated seconds (default: the scenario's duration)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="folder for the CSV tables (and PNG plots); default: write nothing",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    if parallel:
        p.add_argument(
            "-r", "--replications", type=int, default=5, help="independent runs per value"
        )
        p.add_argument("-j", "--jobs", type=int, default=-1, help="processes (-1: all cores)")
        p.add_argument(
            "--backend",
            choices=BACKENDS,
            default="loky",
            help="joblib backend; dask needs a cluster (DASK_SCHEDULER_ADDRESS), ray needs ray",
        )
        p.add_argument(
            "--rate",
            type=float,
            default=None,
            help="override the arrival rate, commands/s (default: the scenario's)",
        )


def register(sub: Any) -> None:
    """Add ``simulate``, ``sweep``, ``plan`` and ``scenario-reference`` to ``cqrs-lab``."""
    p = sub.add_parser("simulate", help="run a scenario in SimPy time through the real engine")
    _common(p, parallel=False)
    add_no_plots(p)
    p.set_defaults(run=_tuned(_simulate))
    p = sub.add_parser("sweep", help="a parameter grid times replications, with CIs")
    _common(p, parallel=True)
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a swept parameter (repeatable), e.g. commands.handlers=2,4,8",
    )
    p.add_argument(
        "--metrics",
        default=None,
        metavar="M1,M2",
        help=f"summary fields to report (default: {','.join(DEFAULT_METRICS)}; the "
        "staleness only for a scenario with [reads])",
    )
    p.set_defaults(run=_tuned(run_sweep))
    p = sub.add_parser("plan", help="smallest consumers/handlers meeting a target")
    _common(p, parallel=True)
    p.add_argument(
        "--knob",
        default="projections.balances.consumers",
        help="the whole-number count raised: commands.handlers, projections.NAME.consumers "
        "or reads.readers",
    )
    p.add_argument(
        "--target",
        default="lag_p99_s<0.5",
        metavar="METRIC<LIMIT",
        help="what must hold, a summary field in seconds (latency_*, lag_*, staleness_*)",
    )
    p.add_argument(
        "--max",
        type=int,
        default=None,
        help="largest value to try (default: the view's partitions; handlers, readers: 16 "
        "or twice the stability bound if more)",
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="confidence of the interval whose upper end must be under the limit",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a fixed scenario override (repeatable), checked as sweep --param is, e.g. "
        "projections.balances.crash.ttf=600",
    )
    p.add_argument(
        "--max-replications",
        type=int,
        default=12,
        help="most runs per value while its interval straddles the limit (default: 12)",
    )
    p.set_defaults(run=_tuned(run_plan), replications=3)
    p = sub.add_parser(
        "scenario-reference", help="every scenario file key: unit, default, allowed values"
    )
    p.add_argument("--out", default=None, help="write the Markdown there (default: print it)")
    p.set_defaults(run=_reference)
