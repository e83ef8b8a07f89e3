"""``cqrs-lab``: the lab's command line. Each driver package adds its own subcommands.

A user's mistake is one line on stderr and exit status 2, never a traceback: a bad flag
(argparse), a bad value (:class:`~cqrs_lab.errors.CqrsLabError`) or a path that cannot be
read or written (:class:`OSError`). Ctrl-C exits 130. Every flag's help shows its default.

>>> main(["--version"])  # doctest: +ELLIPSIS
cqrs-lab ...
0
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from cqrs_lab.display import add_no_plots
from cqrs_lab.errors import CqrsLabError

__all__ = ["HelpFormatter", "LabParser", "add_no_plots", "build_parser", "main", "version"]

#: modules with a ``register(subparsers)`` function, in the order their commands are listed
COMMAND_MODULES = (
    "cqrs_lab.demo",
    "cqrs_lab.sim.cli",
    "cqrs_lab.checks.cli",
    "cqrs_lab.http.cli",
    "cqrs_lab.load.cli",
)


def version() -> str:
    """The installed distribution's version (the package's own when not installed)."""
    try:
        return importlib.metadata.version("cqrs_lab")
    except importlib.metadata.PackageNotFoundError:
        from cqrs_lab import __version__

        return __version__


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after a flag's help, unless the help already says its default
    in words or there is none to show (None, False, an empty string or list)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default in ("", []):
            return text
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            return text
        return super()._get_help_string(action)


class LabParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``PROG: problem (see PROG --help)``)
    and whose help shows defaults; subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = LabParser(
        prog="cqrs-lab",
        description="Simulate, check and load-test CQRS designs on one deterministic engine.",
    )
    parser.add_argument("--version", action="version", version=f"cqrs-lab {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except ModuleNotFoundError:  # the driver's package is not there
            continue
        importlib.import_module(name).register(sub)
    return parser


def _os_error(exc: OSError) -> str:
    """An OSError as one line naming the path: ``PATH: No such file or directory``."""
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cqrs-lab`` with ``argv``; the exit status (2 for a user's mistake)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a bad flag (2, one line printed)
        return exc.code if isinstance(exc.code, int) else 2
    prog = f"cqrs-lab {args.command}"
    try:
        code: int = args.run(args)
    except CqrsLabError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (`| head`) went away: not an error of ours
        sys.stderr.close()
        return 0
    except OSError as exc:  # a path given by the user: missing, a folder, no permission
        print(f"{prog}: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
