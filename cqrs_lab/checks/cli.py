"""``cqrs-lab check HISTORY.jsonl``: the session-guarantee report of a recorded history.

Exit status 0 when every guarantee holds, 1 when one is violated, 2 when the file is
malformed (the message names the line and the field).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="cqrs-lab")
>>> register(parser.add_subparsers())
>>> parser.parse_args(["check", "h.jsonl", "--staleness-bound", "0.5"]).staleness_bound
0.5
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cqrs_lab.checks.history import HistoryError, read_jsonl
from cqrs_lab.checks.session import check_history

__all__ = ["register", "run_check"]


def run_check(args: argparse.Namespace) -> int:
    """Read the history, check it, print the report (text or JSON); the exit status."""
    try:
        ops = read_jsonl(args.history)
    except HistoryError as exc:
        print(f"cqrs-lab check: {exc}", file=sys.stderr)
        return 2
    report = check_history(
        ops, staleness_bound=args.staleness_bound, staleness_positions=args.staleness_positions
    )
    print(report.to_json() if args.json else report.to_text(max_violations=args.show))
    return 0 if report.ok else 1


def _non_negative(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: pass a value >= 0")
        return value

    return parse


def register(sub: Any) -> None:
    """Add the ``check`` subcommand to ``cqrs-lab``'s subparsers."""
    p = sub.add_parser(
        "check",
        help="check a history (JSON Lines) for session guarantees and bounded staleness",
        description=(
            "Check read-your-writes, monotonic reads, monotonic writes, writes-follow-reads "
            "and bounded staleness over a history of client operations. Exit 1 when a "
            "guarantee is violated, 2 when the file is malformed."
        ),
    )
    p.add_argument("history", help="history file, one JSON object per line")
    p.add_argument(
        "--staleness-bound", type=_non_negative(float), default=None, metavar="S",
        help="fail reads staler than S seconds (default: report staleness only)",
    )  # fmt: skip
    p.add_argument(
        "--staleness-positions", type=_non_negative(int), default=None, metavar="N",
        help="fail reads more than N positions behind a completed write",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--show", type=int, default=5, help="violations shown per guarantee")
    p.set_defaults(run=run_check)
