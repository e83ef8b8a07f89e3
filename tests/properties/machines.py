"""A stateful machine for sagas under faults: transfers, partitioned or not, with crashes at
named points, duplicates, reorders, delays and drops, and fault plans changed at run time.

What must hold, for each semantics that promises no loss:
- after every step: positions are honest (never ahead of what was applied), the log's
  streams are well formed, the balances read model is explained by its applications;
- rebuilt by an operator (in place or shadow, a partitioned saga with its group) at any
  moment, the saga sends the steps it had not taken and none it had;
- after quiescence: every transfer has ended (completed, compensated or failed) exactly once,
  every finished transfer moved exactly its money, the saga's table agrees with the log,
  no saga instance is left open, money is conserved, and nothing was lost.

The machine takes its saga class, semantics and partition count as class attributes so a
test can run it against a deliberately broken variant (``tests/properties/broken.py``).
Every rule run is noted in ``steps`` so a test can read back the shrunk counterexample.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cqrs_lab.checks import (
    ApplicationLog,
    check_log_streams,
    check_no_loss,
    check_positions,
    check_record_explains_model,
    quiesce,
)
from cqrs_lab.core import CrashAt, DeliveryPolicy, Engine, FaultPlan, ManualClock, Projection
from cqrs_lab.domains import bank
from cqrs_lab.domains.bank import check_sagas, trace_transfers
from cqrs_lab.errors import CommandRefused
from cqrs_lab.testing import crash_points, fault_actions

ACCOUNTS = ("a", "b", "c")
OPENING = 50
TRANSPORT = ("drop", "duplicate", "delay", "reorder")


class TransfersUnderFaults(RuleBasedStateMachine):
    saga_class: ClassVar[type[Projection]] = bank.TransferSaga
    semantics: ClassVar[str | DeliveryPolicy] = "effectively-once"
    partitions: ClassVar[int] = 3
    #: the rules run in the last example (the shrunk counterexample once hypothesis is done)
    steps: ClassVar[list[str]] = []

    def __init__(self) -> None:
        super().__init__()
        type(self).steps = []
        self.clock = ManualClock()
        self.log = ApplicationLog()
        self.engine = Engine(clock=self.clock, seed=5, recorder=self.log)
        self.log.attach(self.engine)
        opts: dict[str, Any] = {"batch_size": 4, "checkpoint_every": 2}
        bank.install(self.engine, delivery="effectively-once", saga=False, statements=False)
        saga = self.saga_class()
        if self.partitions > 1:
            self.engine.subscribe_partitioned(
                saga, self.semantics, partitions=self.partitions, **opts
            )
        else:
            self.engine.subscribe(saga, self.semantics, **opts)
        self.saga = saga
        self.members = sorted(n for n in self.engine.subscriptions if n != "balances")
        self.money = 0  # what clients put in, less what they took out
        #: rebuilt, an at-most-once saga replays what it had lost (another promise, not here)
        self.no_loss = self.engine.subscription(self.members[0]).policy.promises_no_loss

    def note(self, text: str) -> None:
        type(self).steps.append(text)

    # -- clients ------------------------------------------------------------------------
    @initialize()
    def open_accounts(self) -> None:
        for account in ACCOUNTS:
            self.engine.dispatch(bank.OpenAccount(account, "owner", OPENING))
            self.money += OPENING
        for account in ACCOUNTS:  # a few events in every partition from the start
            self.engine.dispatch(bank.Deposit(account, 1))
            self.money += 1

    @rule(
        tid=st.integers(0, 3).map(lambda i: f"t{i}"),
        pair=st.permutations(ACCOUNTS).map(lambda p: p[:2]),
        amount=st.integers(1, 60),
    )
    def transfer(self, tid: str, pair: tuple[str, str], amount: int) -> None:
        self.note(f"RequestTransfer({tid}, {pair[0]} -> {pair[1]}, {amount})")
        with contextlib.suppress(CommandRefused):
            self.engine.dispatch(bank.RequestTransfer(tid, pair[0], pair[1], amount))

    @rule(account=st.sampled_from(ACCOUNTS), amount=st.integers(1, 30), deposit=st.booleans())
    def move_money(self, account: str, amount: int, deposit: bool) -> None:
        cmd = bank.Deposit(account, amount) if deposit else bank.Withdraw(account, amount)
        self.note(repr(cmd))
        try:
            self.engine.dispatch(cmd)
        except CommandRefused:
            return
        self.money += amount if deposit else -amount

    @rule(account=st.sampled_from(ACCOUNTS))
    def close(self, account: str) -> None:
        """An operator closes an account: later credits to it are refused and refunded."""
        self.note(f"CloseAccount({account})")
        with contextlib.suppress(CommandRefused):
            self.engine.dispatch(bank.CloseAccount(account))

    # -- the read side, its faults and the clock ---------------------------------------------
    def member(self, i: int) -> str:
        return self.members[i % len(self.members)]

    @rule(i=st.integers(0, 7), n=st.integers(0, 3))
    def step(self, i: int, n: int) -> None:
        """Poll, then handle ``n`` events (0: poll only, the rest waits in the inbox)."""
        self.note(f"step {self.member(i)} x{n}")
        self.engine.subscription(self.member(i)).step(max_events=n)

    @rule()
    def pump(self) -> None:
        self.note("pump")
        self.engine.pump()

    @rule(seconds=st.sampled_from((0.1, 1.0, 5.0)))
    def time_passes(self, seconds: float) -> None:
        self.note(f"{seconds} s pass")
        self.clock.advance(seconds)

    @rule(i=st.integers(0, 7))
    def crash(self, i: int) -> None:
        self.note(f"crash {self.member(i)}")
        self.engine.subscription(self.member(i)).crash()

    @rule(i=st.integers(0, 7))
    def restart(self, i: int) -> None:
        self.note(f"restart {self.member(i)}")
        self.engine.subscription(self.member(i)).restart()

    @rule(i=st.integers(0, 7), ahead=st.integers(1, 4), point=crash_points())
    def crash_at(self, i: int, ahead: int, point: Any) -> None:
        sub = self.engine.subscription(self.member(i))
        at = CrashAt(sub.fetched + ahead, point)
        self.note(f"{sub.name}: {at}")
        sub.set_faults(FaultPlan(actions=(at,)))

    @rule(
        i=st.integers(0, 7),
        faults=st.lists(fault_actions(4, kinds=TRANSPORT), min_size=1, max_size=3),
    )
    def transport_fault(self, i: int, faults: list[Any]) -> None:
        """Aim transport faults at the next positions this consumer will fetch."""
        sub = self.engine.subscription(self.member(i))
        moved = tuple(
            type(f)(**{**_fields(f), "position": sub.fetched + f.position}) for f in faults
        )
        plan = FaultPlan(actions=moved)
        self.note(f"{sub.name}: {plan}")
        sub.set_faults(plan)

    @rule(i=st.integers(0, 7), p=st.sampled_from((0.2, 0.5)))
    def flaky(self, i: int, p: float) -> None:
        """The consumer crashes at a random named point with probability p per event."""
        sub = self.engine.subscription(self.member(i))
        self.note(f"{sub.name}: crash p={p}")
        sub.set_faults(FaultPlan(crash=p))

    @rule(
        i=st.integers(0, 7),
        kinds=st.sets(st.sampled_from(TRANSPORT), min_size=1),
        p=st.sampled_from((0.3, 0.7)),
    )
    def unreliable(self, i: int, kinds: set[str], p: float) -> None:
        """The transport drops, duplicates, delays or reorders with probability p (a
        delayed event's duplicate arrives first: a late duplicate of the original)."""
        sub = self.engine.subscription(self.member(i))
        plan = FaultPlan(**dict.fromkeys(sorted(kinds), p), delay_seconds=(0.5, 2.0))
        self.note(f"{sub.name}: {plan}")
        sub.set_faults(plan)

    @precondition(lambda self: self.no_loss)
    @rule(shadow=st.booleans())
    def rebuild(self, shadow: bool) -> None:
        """An operator rebuilds the saga from the log: in place or beside the live copy (a
        partitioned one with its group, in place). Its steps taken before are not sent again;
        the ones it had not taken are (whatever order its events then arrive in)."""
        name = self.saga.name
        if self.partitions > 1:
            self.note(f"rebuild {name} (its group)")
            self.engine.groups[name].rebuild()
        else:
            self.note(f"rebuild {name} shadow={shadow}")
            self.engine.subscription(name).rebuild(shadow=shadow)

    @rule(i=st.integers(0, 7))
    def heal(self, i: int) -> None:
        """The faults stop at run time; what the transport held is delivered now."""
        self.note(f"heal {self.member(i)}")
        self.engine.subscription(self.member(i)).set_faults(None)

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def safety(self) -> None:
        engine, log = self.engine, self.log
        assert check_log_streams(engine).passed
        honest = check_positions(engine, log)
        assert honest.ok, honest.to_text()
        explained = check_record_explains_model(engine, log)
        assert explained.ok, explained.to_text()

    def teardown(self) -> None:
        engine, log = self.engine, self.log
        engine.set_faults(None)
        quiesce(engine)
        if not self.engine.subscription(self.members[0]).policy.promises_no_loss:
            self.losses_explained()
            return
        sagas = check_sagas(engine)
        assert sagas.ok, sagas.to_text()
        assert all(r.status == "pass" for r in sagas.results), sagas.to_text()
        open_ = getattr(self.saga, "open_instances", lambda: 0)()
        assert open_ == 0, f"{open_} saga instances never ended\n{sagas.to_text()}"
        balances = engine.projection("balances").state()["balances"]
        assert sum(balances.values()) == self.money, (balances, self.money)
        loss = check_no_loss(engine, log)
        assert loss.ok, loss.to_text()
        honest = check_positions(engine, log)
        assert honest.ok, honest.to_text()

    def losses_explained(self) -> None:
        """At-most-once: what a saga loses is exactly what its consumer declared lost.

        A transfer that never ended had one of its own events declared lost; a finished
        transfer moved exactly its money; the saga counts its open transfers; and the money
        missing from the accounts is what open transfers debited and never paid back.
        """
        engine, log = self.engine, self.log
        sagas = check_sagas(engine)
        assert sagas["sagas: money conserved"].status == "pass", sagas.to_text()
        lost = set().union(*(log.lost_positions(m) for m in self.members))
        open_traces = [t for t in trace_transfers(engine).values() if not t.outcomes]
        held = 0
        for t in open_traces:
            own = {t.requested_at, *t.debits, *t.credits, *t.refunds}
            assert own & lost, f"transfer {t.transfer_id} never ended and lost nothing: {t}"
            if t.debits and not t.credits and not t.refunds:
                held += t.amount
        traces = trace_transfers(engine)
        for tid, row in self.saga.state()["transfers"].items():
            t = traces.get(tid)
            if t is None or row["status"] == (t.outcomes[:1] or [row["status"]])[0]:
                continue  # the saga agrees with the log (or the transfer is open in both)
            own = {t.requested_at, *t.debits, *t.credits, *t.refunds}
            ended = {e.position for e in engine.store.read_all() if _ends(e.payload, tid)}
            assert (own | ended) & lost, f"saga shows {row} but the log says {t}; nothing lost"
        balances = engine.projection("balances").state()["balances"]
        assert sum(balances.values()) == self.money - held, (balances, self.money, held)
        honest = check_positions(engine, log)
        assert honest.ok, honest.to_text()


def _ends(event: Any, transfer_id: str) -> bool:
    ended = (bank.TransferCompleted, bank.TransferCompensated, bank.TransferFailed)
    return isinstance(event, ended) and event.transfer_id == transfer_id


def _fields(action: Any) -> dict[str, Any]:
    return {name: getattr(action, name) for name in action.__dataclass_fields__}


def machine(
    *,
    semantics: str | DeliveryPolicy = "effectively-once",
    partitions: int = 3,
    saga_class: type[Projection] = bank.TransferSaga,
    name: str = "",
) -> type[TransfersUnderFaults]:
    """A machine class for one configuration (a new class: ``steps`` is its own)."""
    attrs = {
        "semantics": semantics, "partitions": partitions, "saga_class": saga_class,
        "steps": [],
    }  # fmt: skip
    label = name or f"Transfers_{str(semantics).replace('-', '_')}_{partitions}"
    return type(label, (TransfersUnderFaults,), attrs)
