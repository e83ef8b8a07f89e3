"""``cqrs-lab check PATH...``: the session-guarantee report of a recorded history.

Each PATH is a history file (JSON Lines) or a folder, which contributes its ``*.jsonl``
files (not its subfolders'): a load test writes one ``history-<worker>.jsonl`` per worker
into its ``records/`` folder. All files are merged into one history; session ids are
global, so equal ids in two files are one session (the load test's workers never reuse one).
Violations cite ``line N``, or ``FILE line N`` when several files are read.

Exit status 0 when every guarantee holds, 1 when one is violated, 2 when the history cannot
be checked: a path is missing, a folder holds no history file, a file is not UTF-8, a
record is malformed, or there is no operation at all (the message names the file, the line
and the field, and how to fix it).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="cqrs-lab")
>>> register(parser.add_subparsers())
>>> args = parser.parse_args(["check", "h.jsonl", "records/", "--staleness-bound", "0.5"])
>>> args.history, args.staleness_bound
(['h.jsonl', 'records/'], 0.5)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cqrs_lab.checks.history import HISTORY_GLOB, HistoryError, history_files, read_histories
from cqrs_lab.checks.session import check_history

__all__ = ["register", "run_check"]


def run_check(args: argparse.Namespace) -> int:
    """Read the histories, check them, print the report (text or JSON); the exit status."""
    if args.show < 0:
        print(f"cqrs-lab check: --show {args.show}: violations shown, >= 0", file=sys.stderr)
        return 2
    try:
        files = history_files(args.history)
        ops = read_histories(files)
    except HistoryError as exc:
        print(f"cqrs-lab check: {exc}", file=sys.stderr)
        return 2
    counted = {op.origin.file for op in ops if op.origin is not None}
    for path in files:
        if str(path) not in counted:
            print(f"cqrs-lab check: note: {path} holds no operation", file=sys.stderr)
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
        help="check histories (JSON Lines) for session guarantees and bounded staleness",
        description=(
            "Check read-your-writes, monotonic reads, monotonic writes, writes-follow-reads "
            "and bounded staleness over a history of client operations, merged from every "
            "file given (session ids are global across files). Exit 0 when every guarantee "
            "holds, 1 when one is violated, 2 when a path is missing, a folder holds no "
            "history file, a file is not UTF-8 or malformed, or no operation was recorded."
        ),
    )
    p.add_argument(
        "history", nargs="+", metavar="PATH",
        help=f"a history file (one JSON object per line), or a folder: its {HISTORY_GLOB} "
        "files, e.g. a load test's records/ with one history-*.jsonl per worker",
    )  # fmt: skip
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
