"""A database that stops answering without dropping its connections (its processes paused
with SIGSTOP, as a frozen host or a black-holed network path looks from the client): a use
of a connection gives up after the store's statement limit with StoreUnavailable, where it
used to wait for as long as the database stayed paused (a served loop answering nothing,
``/livez`` included); once the database resumes, the store works again.

The cluster is this test's own: pausing it must not stall the session's other tests."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cqrs_lab.errors import StoreUnavailable
from cqrs_lab.stores.postgres_deadline import Deadlines
from cqrs_lab.stores.postgres_transactions import COOL_DOWN_S, PostgresTransactions
from tests.postgres.cluster import Cluster, running_cluster

pytestmark = pytest.mark.slow  # a cluster of its own


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    with running_cluster() as cluster:
        yield cluster


def _cluster_pids(cluster: Cluster) -> list[int]:
    """The postmaster (first line of postmaster.pid) and every process it started."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(entry.name))
    return [postmaster, *children]


def test_a_paused_database_fails_a_statement_after_the_limit_then_works_again(
    own_cluster: Cluster,
) -> None:
    tx = PostgresTransactions(own_cluster.dsn(), schema="paused", statement_limit_s=1.0)
    try:
        assert tx.query("SELECT 1") == [(1,)]
        pids = _cluster_pids(own_cluster)
        assert len(pids) >= 3  # the postmaster and its background processes at least
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailable, match="cannot be reached"):
                tx.query("SELECT 2")
            waited = time.monotonic() - t0
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        # the limit (1 s) and the watchdog's tick (0.25 s), not the pause's length
        assert 0.9 < waited < 3.0, waited
        assert tx.deadlines.fired >= 1
        time.sleep(COOL_DOWN_S + 0.1)  # past the cool-down: the next call tries again
        assert tx.query("SELECT 3") == [(3,)]
    finally:
        tx.close()


def test_a_number_another_socket_took_meanwhile_is_left_alone() -> None:
    """The held connection's socket closed inside the block and another socket took its
    descriptor number: past the deadline the watchdog leaves that one alone."""
    deadlines = Deadlines(0.1, tick=0.02)
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    fd = a.fileno()
    try:
        with deadlines.hold(fd):
            a.close()
            os.dup2(c.fileno(), fd)  # the number now names the other pair's socket
            time.sleep(0.3)
        assert deadlines.fired == 0
        os.write(fd, b"x")  # still open both ways
        assert d.recv(1) == b"x"
        with socket.socket(fileno=os.dup(fd)) as again, deadlines.hold(again.fileno()):
            time.sleep(0.3)  # its own hold: shut down
        assert deadlines.fired == 1
    finally:
        deadlines.close()
        os.close(fd)
        for s in (b, c, d):
            s.close()
