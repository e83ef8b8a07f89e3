"""``cqrs-lab``: the lab's command line. Each driver package adds its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from cqrs_lab.errors import CqrsLabError

#: modules with a ``register(subparsers)`` function, in the order their commands are listed
COMMAND_MODULES = (
    "cqrs_lab.demo",
    "cqrs_lab.sim.cli",
    "cqrs_lab.checks.cli",
    "cqrs_lab.http.cli",
    "cqrs_lab.load.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cqrs-lab",
        description="Simulate, check and load-test CQRS designs on one deterministic engine.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except ModuleNotFoundError:  # the driver's package is not there
            continue
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except CqrsLabError as exc:
        print(f"cqrs-lab {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (`| head`) went away: not an error of ours
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
