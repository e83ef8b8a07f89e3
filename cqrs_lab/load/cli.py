"""``cqrs-lab loadtest`` (Locust against the real deployment) and ``cqrs-lab twin``.

>>> import argparse
>>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
>>> args = parser.parse_args(["loadtest", "--rate", "50", "--duration", "5",
...                           "--domain", "cqrs_lab.domains.inventory", "--mix", "reserve=1"])
>>> options(args).model, options(args).traffic().mix
('open', {'reserve': 1.0})
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.cli_options import load_args, options, run_levels
from cqrs_lab.load.runner import run_loadtest
from cqrs_lab.load.twin_cli import add_twin

__all__ = ["load_args", "options", "register", "run_levels"]


def _loadtest(args: argparse.Namespace) -> int:
    from cqrs_lab.load.results import load_results
    from cqrs_lab.load.summary import format_summary, strict_failures

    try:
        opts = options(args)
        out, code = run_loadtest(opts)
        result = load_results(out)
    except ConfigError as exc:
        print(f"cqrs-lab loadtest: {exc}", file=sys.stderr)
        return 2
    s = result.summary.iloc[0]
    print(format_summary(result.summary))
    problems = list(result.run.get("problems") or [])
    failed = code != 0 or bool(problems) or not result.check.ok
    report = result.check.to_text()
    if failed and result.check.ok:  # the checks judged what was recorded; the run failed
        report = report.replace(": PASS (", ": FAIL (the run failed; ", 1)
    print(report)
    print(f"results: {out}")
    if opts.shape == "knee" and opts.rate is not None:  # the staircase, step by step
        from cqrs_lab.load.knee import knee_of_run
        from cqrs_lab.load.knee_display import format_knee

        knee = knee_of_run(result)
        knee.steps.to_csv(out / "knee.csv", index=False)
        print(format_knee(knee))
    if s["generator_bound"]:
        print(
            f"cqrs-lab loadtest: generator-bound: {s['generator_bound_why']}; the load was not "
            "what was asked for (fewer Locust users per process, --processes, or a lower --rate)",
            file=sys.stderr,
        )
    if code != 0 or problems:
        for problem in problems:
            print(f"cqrs-lab loadtest: {problem}", file=sys.stderr)
        codes = result.run.get("locust_exit_codes")
        print(f"FAIL: the run failed (locust exit codes {codes}); see {out}", file=sys.stderr)
        return 1
    if not result.check.ok:
        print(f"FAIL: the run's checks failed; see {out}", file=sys.stderr)
        return 1
    reasons = strict_failures(result.summary) if args.strict else []
    if reasons:
        print(f"FAIL (--strict): {'; '.join(reasons)}", file=sys.stderr)
        return 3
    return 0


def register(sub: Any) -> None:
    """Add ``loadtest`` and ``twin`` to the ``cqrs-lab`` command line."""
    p = sub.add_parser("loadtest", help="Locust (headless) against the HTTP deployment")
    load_args(p)
    p.add_argument("--out", default=None, help="results folder (default: results/loadtest-TIME)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 3 on any 5xx, read-your-writes violation or lost write, or a "
        "generator-bound run (the load was not what was asked for)",
    )
    p.set_defaults(run=_loadtest)
    add_twin(sub)
