"""The throwaway cluster's watchdog: stops the cluster if the process that started it dies.

:func:`~cqrs_lab.stores.pg_cluster.start_cluster` starts this module as a process of its own
(its own session, so a Ctrl-C to the terminal's process group does not reach it) holding the
read end of a pipe whose write end only the starting process holds. However that process
ends, even killed with SIGKILL before it could call ``Cluster.stop()``, the kernel closes the
write end and the read here returns end of file; the watchdog then stops the server (if its
``postmaster.pid`` is still there) and removes the cluster's folder. After a normal
``stop()`` it finds both gone and just exits.

Usage (by ``start_cluster`` only): ``python -m cqrs_lab.stores.pg_watchdog FD ROOT PG_CTL
[AS_USER...]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str]) -> int:
    fd, root, pg_ctl, *as_user = argv
    while os.read(int(fd), 1):  # nothing is ever written: this returns at end of file
        pass
    data = Path(root) / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "stop", "-m", "fast"],
                       capture_output=True, timeout=120, check=False)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
