"""``cqrs-lab twin``: calibrate the simulation from load tests and compare, or measure the
knee and judge the twin up to it (:mod:`cqrs_lab.load.knee_validation`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from cqrs_lab.display import add_no_plots
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.cli_options import load_args, options, run_levels

__all__ = ["add_twin"]


#: the least seconds of load a measured level needs beyond its warm-up: a steady second to
#: judge (:func:`~cqrs_lab.load.calibration_inputs.window`), the last second's cool-down and
#: a second to spare for the last requests' times
LEAST_BEYOND_WARMUP = 3.0


def _twin(args: argparse.Namespace) -> int:
    from cqrs_lab.load import twin
    from cqrs_lab.load.compare import BAND, compare, format_table, plot_comparison
    from cqrs_lab.load.loop_processes import processes_report
    from cqrs_lab.load.results import load_results

    base = Path(args.results)
    try:  # the flags first: a typo is told before minutes of load tests, not after
        rates = _numbers("--measure", args.measure, float, "offered commands/s, e.g. 50,100,200")
        if any(not (math.isfinite(r) and r > 0) for r in rates):
            raise ConfigError(f"--measure {args.measure}: offered commands/s, each > 0 and finite")
        if args.predict_processes:
            procs = _numbers("--predict-processes", args.predict_processes, int,
                              "server process counts, e.g. 1,2,3,4")  # fmt: skip
            if not procs or min(procs) < 1:
                raise ConfigError(
                    f"--predict-processes {args.predict_processes}: process counts, each >= 1"
                )
        if not (math.isfinite(args.warmup) and args.warmup >= 0):
            raise ConfigError(f"--warmup {args.warmup}: seconds dropped at the start, >= 0")
        if args.measure_knee and not args.knee_only and not args.level_seconds > 0:
            raise ConfigError(f"--level-seconds {args.level_seconds}: seconds per level, > 0")
        least = args.warmup + LEAST_BEYOND_WARMUP  # a level's load: warm-up, 1 s judged, cool-down
        if rates and not args.duration >= least:
            raise ConfigError(
                f"--duration {args.duration:g} with --warmup {args.warmup:g}: each level needs "
                f"at least {least:g} s of load (the warm-up, then a steady second judged with "
                "room to spare and the last second's cool-down); raise --duration or lower "
                "--warmup"
            )
        if args.measure_knee and not args.knee_only and not args.level_seconds >= least:
            raise ConfigError(
                f"--level-seconds {args.level_seconds:g} with --warmup {args.warmup:g}: each "
                f"validation run needs at least {least:g} s of load; raise --level-seconds or "
                "lower --warmup"
            )
        if args.knee_only and not args.measure_knee:
            raise ConfigError("--knee-only: goes with --measure-knee (it stops after the knee)")
    except ConfigError as exc:
        print(f"cqrs-lab twin: {exc}", file=sys.stderr)
        return 2
    if not args.measure and not args.measure_knee and not base.is_dir():
        raise ConfigError(
            f"{base}: no such folder; give a load test's results folder (or a folder of them), "
            "or --measure RATES (or --measure-knee) to run load tests into it first"
        )
    try:
        if args.measure_knee:
            from cqrs_lab.load.knee_display import knee_report

            base.mkdir(parents=True, exist_ok=True)
            knee = knee_report(options(args, out=str(base)), base, args.knee_from, args.knee_step,
                               plots=not args.no_plots)  # fmt: skip
            if not knee.reached:
                print(f"cqrs-lab twin: knee not measured: {knee.why}", file=sys.stderr)
                return 1
            if args.knee_only:
                return 0
            if not args.measure:  # the levels at shares of the capacity, and the verdicts
                from cqrs_lab.load.knee_validation import validate_and_report

                return validate_and_report(args, base, knee)
        if not (args.measure or args.measure_knee or args.calibrate_from) and args.model == "loop":
            from cqrs_lab.load.knee_validation import saved_knee, validate_and_report

            saved = saved_knee(base)  # a --measure-knee folder: judged again up to its knee
            if saved is not None and saved.reached and (levels := _result_dirs(base)):
                return validate_and_report(args, base, saved, levels)
        if args.measure:
            run_levels(args, rates, base)
        runs = [base] if (base / "records").is_dir() else _result_dirs(base)
        if not runs:
            raise ConfigError(f"{base}: no load test results (folders with records/) here")
        results = [load_results(p) for p in runs]
        cal = None
        if args.calibrate_from:
            match = [r for r in results if r.path.name == args.calibrate_from]
            if not match:
                names = ", ".join(r.path.name for r in results)
                raise ConfigError(
                    f"--calibrate-from {args.calibrate_from!r}: no such run in {base} ({names})"
                )
            cal = twin.calibrate(match[0], args.warmup, force=args.force)
        table = compare(results, cal, args.warmup, force=args.force, model=args.model)
        cal = table.attrs["calibration"]
    except (ConfigError, ValueError) as exc:
        print(f"cqrs-lab twin: {exc}", file=sys.stderr)
        return 2
    out = base
    table.to_csv(out / "twin.csv", index=False)
    top = float(table["sent_commands_per_s"].max())
    scenario = cal.write(out / "twin-scenario.toml", rate=top, duration=30.0)
    print(cal.describe())
    print(format_table(table))
    counts = table["verdict"].value_counts()
    bound = sorted(set(table[table["regime"] == "generator-bound"]["run"]))
    print(
        f"validation (within {BAND:.0%}): {counts.get('pass', 0)} pass, "
        f"{counts.get('fail', 0)} fail, {counts.get('not judged', 0)} not judged"
        + (f" (generator-bound: {', '.join(bound)})" if bound else "")
    )
    for name, why in table.attrs["disturbed"].items():
        print(f"set aside {name}: {why}")
    if not args.no_plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = plot_comparison(table)
        fig = ax[0][0].figure
        fig.tight_layout()
        fig.savefig(out / "twin.png", dpi=90)
        plt.close(fig)
    print(f"table: {out / 'twin.csv'}; scenario: {scenario}")
    if args.predict_processes and not processes_report(args.predict_processes, cal, out):
        return 2
    return 0


def _result_dirs(base: Path) -> list[Path]:
    """The load test results (folders with ``records/``) in ``base``, by name."""
    return sorted(p for p in base.iterdir() if (p / "records").is_dir())


def _numbers(option: str, spec: str, kind: type[float] | type[int], what: str) -> list[Any]:
    """A comma-separated list of ``kind`` (``--measure``, ``--predict-processes``), or a
    :class:`ConfigError` naming the option, the item and what it takes.

    >>> _numbers("--measure", "50, 100,", float, "rates")
    [50.0, 100.0]
    >>> _numbers("-n", "1,x", int, "counts")
    Traceback (most recent call last):
    cqrs_lab.errors.ConfigError: -n 1,x: 'x' is not a whole number; give counts
    """
    out = []
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        try:
            out.append(kind(item))
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{option} {spec}: {item!r} is not {noun}; give {what}") from None
    return out


def add_twin(sub: Any) -> None:
    """Add ``twin`` to the ``cqrs-lab`` command line."""
    t = sub.add_parser("twin", help="calibrate the simulation from load tests and compare")
    t.add_argument("results", metavar="RESULTS_DIR", help="a run folder or a folder of runs")
    t.add_argument(
        "--measure",
        default="",
        metavar="RATES",
        help="first run open-model load tests at these offered commands/s, e.g. 50,100,200, "
        "into RESULTS_DIR/commands-50, ... (a rate given twice is run twice: repeats are "
        "pooled)",
    )
    t.add_argument(
        "--calibrate-from",
        default="",
        metavar="RUN",
        help="run folder name to calibrate from (default: chosen from the runs)",
    )
    t.add_argument("--warmup", type=float, default=2.0, help="seconds dropped at the start")
    t.add_argument(
        "--force",
        action="store_true",
        help="calibrate even from a generator-bound level (default: refuse, exit 2)",
    )
    t.add_argument(
        "--measure-knee",
        action="store_true",
        help="first measure the knee: an open-model staircase of offered commands/s past "
        "saturation into RESULTS_DIR/knee/, writing knee.csv and knee.png (exit 1 when the "
        "knee was not reached, e.g. generator-bound); then, without --measure, run the "
        "validation levels (10%% of the capacity to calibrate, 25, 50, 75, 90%% to judge, "
        "three runs each) and print the closing table",
    )
    t.add_argument(
        "--knee-from", type=float, default=200.0, help="the knee ramp's first commands/s"
    )
    t.add_argument(
        "--model",
        choices=("loop", "fitted"),
        default="loop",
        help="the twin: loop (the served process as one event loop, calibrated stage by stage "
        "from the lightest level; default) or fitted (one folded service time with power-law "
        "curves over the two lightest levels)",
    )
    t.add_argument(
        "--knee-only",
        action="store_true",
        help="with --measure-knee: measure the knee and stop (no validation levels)",
    )
    t.add_argument(
        "--level-seconds",
        type=float,
        default=10.0,
        help="with --measure-knee: seconds of load per validation run",
    )
    t.add_argument("--knee-step", type=float, default=5.0, help="seconds per knee step")
    t.add_argument(
        "--predict-processes",
        default="",
        metavar="COUNTS",
        help="also predict the capacity (commands/s) with these numbers of server processes, "
        "e.g. 1,2,4 (each pumps every event into its own replicas), marking where adding one "
        "stops helping (gain under 10%%); written to RESULTS_DIR/twin-processes.csv",
    )
    add_no_plots(t)
    load_args(t)
    t.set_defaults(run=_twin)
