"""The ``serve`` flags that argparse cannot judge alone, checked before anything starts or
is written: the port's range, an address, finite times, and a ``--stages-csv`` path that is
neither a folder, nor the event store's own file, nor a file of something else.

>>> import argparse
>>> check_serve_args(argparse.Namespace(port=70000, host="127.0.0.1", restart_after=1.0,
...                                     gc_freeze_every=0, stages_csv=None, store=None))
Traceback (most recent call last):
cqrs_lab.errors.ConfigError: --port 70000: a TCP port, 0 to 65535 (0: any free one)
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cqrs_lab.errors import ConfigError
from cqrs_lab.http.stages import STAGE_COLUMNS

__all__ = ["check_serve_args", "check_stages_path"]


def check_serve_args(args: argparse.Namespace) -> None:
    """The flags argparse cannot judge alone, before anything starts or is written."""
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: a TCP port, 0 to 65535 (0: any free one)")
    if not args.host.strip():
        raise ConfigError("--host '': name the address to listen on, e.g. 127.0.0.1")
    if math.isnan(args.restart_after):
        raise ConfigError("--restart-after nan: seconds before a restart (negative: never)")
    if args.gc_freeze_every < 0:
        raise ConfigError(f"--gc-freeze-every {args.gc_freeze_every}: events, >= 0 (0: never)")
    if args.stages_csv:
        check_stages_path(Path(args.stages_csv), args.store)


def check_stages_path(path: Path, store: str | None) -> None:
    """``--stages-csv``: not a folder, not the store's own file, and not a file of something
    else (a stage CSV of an earlier run is replaced)."""
    if path.is_dir():
        raise ConfigError(f"--stages-csv {path}: a folder; give a file path for the samples")
    own = Path(store.removeprefix("sqlite:")) if store and store.startswith("sqlite:") else None
    if own is not None and path.exists() and path.resolve() == own.resolve():
        raise ConfigError(f"--stages-csv {path}: that is the event store; give another file")
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            first = fh.readline(200)
        if not first.startswith(",".join(STAGE_COLUMNS).encode()):
            raise ConfigError(
                f"--stages-csv {path}: exists and is not a stage samples CSV: left as it is; "
                "give a new file (a samples CSV of an earlier run is replaced)"
            )
