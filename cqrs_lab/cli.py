"""``cqrs-lab``: the lab's command line. Each driver package adds its own subcommands.

A user's mistake is one line on stderr and exit status 2, never a traceback: a bad flag
(argparse), a bad value (:class:`~cqrs_lab.errors.CqrsLabError`) or a path that cannot be
read or written (:class:`OSError`). Ctrl-C exits 130. Every flag's help shows its default.
A command whose extra is not installed is still listed, and says which one to install
(``pip install 'cqrs_lab[sim]'``): the core needs the standard library alone.

>>> main(["--version"])  # doctest: +ELLIPSIS
cqrs-lab ...
0
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

from cqrs_lab.errors import CqrsLabError, MissingExtra, StoreFailure

__all__ = [
    "COMMANDS",
    "CommandModule",
    "HelpFormatter",
    "LabParser",
    "build_parser",
    "main",
    "version",
]


@dataclass(frozen=True)
class CommandModule:
    """A module with a ``register(subparsers)`` function, the commands it adds (name, one-line
    help), and the extra that installs its third-party packages (None: the standard library).

    When the module cannot be imported because a third-party package is missing, its
    commands still appear: each answers which extra to install (:class:`MissingExtra`).
    """

    module: str
    commands: tuple[tuple[str, str], ...]
    extra: str | None = None


#: the command modules, in the order their commands are listed
COMMANDS = (
    CommandModule("cqrs_lab.demo", (("demo", "run a domain's workload through the engine"),)),
    CommandModule(
        "cqrs_lab.sim.cli",
        (
            ("simulate", "run a scenario in SimPy time through the real engine"),
            ("sweep", "a parameter grid times replications, with CIs"),
            ("plan", "smallest consumers/handlers meeting a target"),
            ("scenario-reference", "every scenario file key: unit, default, allowed values"),
        ),
        "sim",
    ),
    CommandModule("cqrs_lab.packaged_scenarios", (("scenarios", "list the packaged scenarios"),)),
    CommandModule("cqrs_lab.checks.cli", (("check", "check histories (JSON Lines)"),), "sim"),
    CommandModule("cqrs_lab.http.cli", (("serve", "serve a domain over HTTP"),), "http"),
    CommandModule(
        "cqrs_lab.stores.cli",
        (("project", "run a domain's sagas as competing workers on PostgreSQL"),),
        "postgres",
    ),
    CommandModule(
        "cqrs_lab.load.cli",
        (
            ("loadtest", "Locust (headless) against the HTTP deployment"),
            ("twin", "calibrate the simulation from load tests and compare"),
        ),
        "load",
    ),
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


def build_parser(commands: Sequence[CommandModule] | None = None) -> argparse.ArgumentParser:
    """``cqrs-lab``'s parser: every command of ``commands`` (default :data:`COMMANDS`), a
    placeholder for each command whose module needs a third-party package not installed."""
    parser = LabParser(
        prog="cqrs-lab",
        description="Simulate, check and load-test CQRS designs on one deterministic engine.",
    )
    parser.add_argument("--version", action="version", version=f"cqrs-lab {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for entry in COMMANDS if commands is None else commands:
        try:
            module = importlib.import_module(entry.module)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if not missing or missing == "cqrs_lab" or entry.extra is None:
                raise  # our own module is broken, or a core command lacks a package: a bug
            _add_placeholders(sub, entry, missing)
        else:
            module.register(sub)
    return parser


def _add_placeholders(sub: Any, entry: CommandModule, missing: str) -> None:
    """Commands that only say which extra installs them (their flags are not checked)."""
    extra = f"cqrs_lab[{entry.extra}]"
    for name, text in entry.commands:
        p = sub.add_parser(
            name,
            help=f"{text} (needs {extra})",
            description=f"{text}. Needs {extra}: pip install '{extra}'",
        )
        p.set_defaults(run=_needs(extra, missing), placeholder=True)


def _needs(extra: str, missing: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise MissingExtra(
            f"needs the package {missing!r}, which is not installed; install the extra: "
            f"pip install '{extra}'"
        )

    return run


def _os_error(exc: OSError) -> str:
    """An OSError as one line naming the path: ``PATH: No such file or directory``."""
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


#: commands that start processes of their own (a server, Locust): a SIGTERM to them is
#: unwound as Ctrl-C is, so that what they started is stopped too, not left running
_STOPPED_ON_TERM = ("loadtest", "twin")


#: what the SIGTERM handler raises: Ctrl-C's exception, told apart by its argument
_SIGTERM = "SIGTERM"


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(_SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cqrs-lab`` with ``argv``; the exit status (2 for a user's mistake)."""
    parser = build_parser()
    try:
        args, rest = parser.parse_known_args(argv)
        if rest and not getattr(args, "placeholder", False):  # a placeholder takes any flag
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    except SystemExit as exc:  # --help, --version (0) or a bad flag (2, one line printed)
        return exc.code if isinstance(exc.code, int) else 2
    prog = f"cqrs-lab {args.command}"
    old_term = None
    if args.command in _STOPPED_ON_TERM and threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, _on_term)
    try:
        code: int = args.run(args)
    except StoreFailure as exc:  # not the user's mistake: try again later
        print(f"{prog}: {exc}", file=sys.stderr)
        return StoreFailure.exit_status
    except CqrsLabError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (`| head`) went away: not an error of ours
        sys.stderr.close()
        return 0
    except OSError as exc:  # a path given by the user: missing, a folder, no permission
        print(f"{prog}: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if exc.args == (_SIGTERM,):
            print(f"{prog}: terminated (what it started is stopped)", file=sys.stderr)
            return 143
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return code


if __name__ == "__main__":
    sys.exit(main())
