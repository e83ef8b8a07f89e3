"""Optimistic concurrency under any interleaving of concurrent writers (decide, then commit)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cqrs_lab.checks import check_no_lost_update, interleave
from cqrs_lab.core import Engine, ManualClock
from cqrs_lab.domains import bank

amounts = st.lists(st.integers(1, 60), min_size=1, max_size=4)


@given(
    writers=st.lists(amounts, min_size=2, max_size=3),
    schedule=st.lists(st.integers(0, 2), max_size=40),
)
def test_no_lost_update_and_no_overdraft_under_any_interleaving(
    writers: list[list[int]], schedule: list[int]
) -> None:
    engine = Engine(clock=ManualClock(), seed=0)
    bank.install(engine, saga=False, statements=False)
    engine.dispatch(bank.OpenAccount("a", "ann", 100))
    commands: list[list[Any]] = [[bank.Withdraw("a", n) for n in w] for w in writers]
    writes = interleave(engine, commands, [i % len(writers) for i in schedule])
    assert check_no_lost_update(engine, writes).ok
    committed = [w for w in writes if w.outcome == "accepted"]
    # each committed withdrawal is in the log once, so the balance is what they explain
    engine.pump()
    balance = engine.projection("balances").state()["balances"]["a"]
    withdrawn = [w.command.amount for w in committed if isinstance(w.command, bank.Withdraw)]
    assert len(withdrawn) == len(committed)
    assert balance == 100 - sum(withdrawn)
    assert balance >= 0
    # a writer that committed read the version right before its own
    versions = sorted(w.first_version for w in committed)
    assert versions == list(range(2, 2 + len(committed)))
