"""Workers that a parent process of ours started (``serve --workers N``, ``project --workers
N``) notice when that parent is gone, killed with SIGKILL or by the out-of-memory killer, and
stop rather than serve on as orphans nobody supervises: the parent names itself in the
environment (:data:`PARENT_ENV`, :func:`child_env`), the worker compares it with its own
parent now (:func:`orphaned`).

>>> import os
>>> orphaned({})()  # not started by a parent of ours
False
>>> orphaned(child_env({}))()  # this process's parent is this very process? no: orphaned
True
>>> orphaned({PARENT_ENV: str(os.getppid())})()
False
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from cqrs_lab.errors import StoreFailure

__all__ = ["MAX_WORKERS", "PARENT_ENV", "child_env", "orphaned", "workers_exit_status"]

#: the most worker processes one command starts (``serve`` or ``project`` ``--workers``): a
#: typo must not fork the machine to death (each holds its own engine, views and database
#: connections)
MAX_WORKERS = 64

#: the environment variable in which a parent passes its process id to its workers
PARENT_ENV = "CQRS_LAB_PARENT"


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a worker of this process (unbuffered output, this process named)."""
    return {**env, "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())}


def orphaned(env: Mapping[str, str] | None = None) -> Callable[[], bool]:
    """Whether the parent that started this process (named in ``env``, by default this
    process's environment) is gone: this process was handed to another. Always False for
    a process no parent of ours started."""
    named = (os.environ if env is None else env).get(PARENT_ENV, "")
    parent = int(named) if named.isdigit() else None
    return lambda: parent is not None and os.getppid() != parent


def workers_exit_status(codes: Iterable[int | None]) -> int:
    """A parent's exit status once its workers all stopped by themselves: the event store's
    failure status (75, try again later) when each stopped on it, else 1.

    >>> workers_exit_status([75, 75]), workers_exit_status([75, 1])
    (75, 1)
    """
    failed = StoreFailure.exit_status
    return failed if all(code == failed for code in codes) else 1
