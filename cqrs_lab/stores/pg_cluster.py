"""A throwaway PostgreSQL cluster: ``initdb`` and ``pg_ctl`` on a temporary folder.

For trying the PostgreSQL store, its tests, the W4 benchmarks and the "Many writers" notebook
without a server of your own. The cluster listens on 127.0.0.1 on a free port (and a unix
socket inside its folder) and trusts local connections. ``durable=False`` (the default) runs
with ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off: its data is thrown away,
so durability buys nothing; ``durable=True`` keeps PostgreSQL's default durability (what a
benchmark of the write path must measure). A watchdog process
(:mod:`cqrs_lab.stores.pg_watchdog`) stops the cluster and removes its folder if the process
that started it dies without calling :meth:`Cluster.stop` (killed, say, by a timeout). As
root (``initdb`` refuses root), the folder is handed to the ``postgres`` user and the server
runs as that user.

>>> from cqrs_lab.stores.pg_cluster import free_port
>>> 1024 <= free_port() <= 65535
True

Typical use (needs the server binaries, Debian package ``postgresql``)::

    cluster = start_cluster()
    try:
        store = PostgresEventStore(cluster.dsn(), clock, ids)
        ...
    finally:
        cluster.stop()
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cqrs_lab.errors import ClusterError

__all__ = ["INSTALL_HINT", "Cluster", "ClusterError", "find_bindir", "free_port", "start_cluster"]

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "
    "`postgresql` (apt-get install -y postgresql), or put its bin folder on PATH"
)


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, PATH, else the
    newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        done = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode == 0:
            candidates.append(Path(done.stdout.strip()))
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    candidates.extend(Path(p) for p in versions)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise ClusterError(INSTALL_HINT)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running throwaway cluster; :meth:`stop` ends it and removes its folder."""

    bindir: Path
    root: Path
    port: int
    as_user: list[str]
    #: the watchdog and the write end of its pipe (see :mod:`cqrs_lab.stores.pg_watchdog`)
    watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    guard: int | None = field(default=None, repr=False)
    #: the server's options (port, sockets, durability), for :meth:`start` again
    options: str = ""

    @property
    def data(self) -> Path:
        return self.root / "data"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    def start(self) -> None:
        """Start the server (again, after a stop: a drill of a database outage)."""
        self.run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", self.options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop_server(self) -> None:
        """Stop the server as a crash does (``pg_ctl stop -m immediate``), keeping the data:
        :meth:`start` brings it back (a drill of a database outage)."""
        self.run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "stop", "-m", "fast")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self._release_watchdog()

    def _release_watchdog(self) -> None:
        """Close the pipe's write end: the watchdog finds nothing left to do and exits."""
        guard, self.guard = self.guard, None
        if guard is not None:
            os.close(guard)
        if self.watchdog is not None:
            try:
                self.watchdog.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.watchdog.kill()
                self.watchdog.wait()


def _start_watchdog(cluster: Cluster) -> None:
    """Start the cluster's watchdog (see :mod:`cqrs_lab.stores.pg_watchdog`), holding the read
    end of a pipe whose write end stays with this process only."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, False)
    try:
        cluster.watchdog = subprocess.Popen(
            [sys.executable, "-m", "cqrs_lab.stores.pg_watchdog", str(read_end),
             str(cluster.root), str(cluster.bindir / "pg_ctl"), *cluster.as_user],
            pass_fds=(read_end,), start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    cluster.guard = write_end


def start_cluster(*, durable: bool = False, max_connections: int = 100) -> Cluster:
    """Create and start a cluster (raise :class:`ClusterError` saying what to install).

    ``durable=True`` keeps ``fsync`` and ``synchronous_commit`` on (PostgreSQL's defaults).
    """
    bindir = find_bindir()
    root = Path(tempfile.mkdtemp(prefix="cqrs-lab-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            raise ClusterError(
                "running as root and there is no `postgres` user to run the server as: "
                "install the Debian package `postgresql` (it creates the user)"
            ) from None
        os.chown(root, pw.pw_uid, pw.pw_gid)
        runuser = shutil.which("runuser")
        as_user = [runuser, "-u", "postgres", "--"] if runuser else [
            "setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups"
        ]  # fmt: skip
    cluster = Cluster(bindir, root, free_port(), as_user)
    try:
        _start_watchdog(cluster)
        cluster.run(
            str(bindir / "initdb"), "-D", str(cluster.data), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={cluster.port} "
            f"-c unix_socket_directories={root} -c max_connections={max_connections}"
        )
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        cluster.options = options
        cluster.start()
    except BaseException:
        log = root / "server.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        cluster.stop()
        if tail:
            raise ClusterError(
                f"the throwaway cluster did not start; server log:\n{tail}"
            ) from None
        raise
    return cluster
