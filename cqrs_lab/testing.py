"""Hypothesis strategies for testing CQRS designs the way the lab tests itself.

Commands of any domain that declares strategies (:func:`domain_commands`; the example
domains' as ``bank_commands`` and ``inventory_commands``, each resolved by reference when
called), fault plans aimed at named crash points and transport faults, and the three delivery
semantics. Fault plans shrink toward fewer actions at earlier positions, and print as a
schedule a person can read:

>>> from cqrs_lab.core import CrashAt, DuplicateAt, FaultPlan
>>> str(FaultPlan(actions=(CrashAt(7), DuplicateAt(9))))
'crash the consumer after handling, before the checkpoint event 7; duplicate event 9'
>>> from hypothesis import find, settings
>>> strategy = domain_commands(load_domain("cqrs_lab.domains.inventory"))
>>> find(strategy, lambda c: type(c).__name__ == "Ship", settings=settings(database=None))
Ship(sku='sku-1', order_id='o1')

Use them in your own tests::

    from hypothesis import given
    from cqrs_lab.testing import bank_commands, delivery_semantics, fault_plans

    @given(st.lists(bank_commands()), fault_plans(max_position=30), delivery_semantics())
    def test_my_design(commands, plan, delivery): ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cqrs_lab.errors import ConfigError, MissingExtra

try:
    from hypothesis import strategies as st
except ModuleNotFoundError as exc:  # the core-only install: say which extra to add
    if exc.name != "hypothesis":
        raise
    raise MissingExtra(
        "cqrs_lab.testing needs the package 'hypothesis', which is not installed; install "
        "the extra: pip install 'cqrs_lab[testing]'"
    ) from None

from cqrs_lab.core import (
    DELIVERY_POLICIES,
    Command,
    CrashAt,
    CrashPoint,
    DelayAt,
    Domain,
    DropAt,
    DuplicateAt,
    FaultPlan,
    ReorderAt,
    load_domain,
)

__all__ = [
    "ACCOUNTS",
    "ORDERS",
    "SKUS",
    "TRANSPORT_FAULTS",
    "bank_commands",
    "crash_points",
    "delivery_semantics",
    "domain_commands",
    "fault_actions",
    "fault_plans",
    "inventory_commands",
]

TRANSPORT_FAULTS = ("drop", "duplicate", "delay", "reorder")
Action = CrashAt | DropAt | DuplicateAt | DelayAt | ReorderAt

#: the example domains, by reference: resolved when a strategy is asked for
BANK, INVENTORY = "cqrs_lab.domains.bank", "cqrs_lab.domains.inventory"
#: account ids the bank's strategy draws from by default
ACCOUNTS = ("a", "b", "c")
#: product ids and order ids the inventory's strategy draws from by default
SKUS = ("sku-1", "sku-2")
ORDERS = ("o1", "o2", "o3")


def delivery_semantics() -> st.SearchStrategy[str]:
    """``"at-most-once"``, ``"at-least-once"`` or ``"effectively-once"``."""
    return st.sampled_from(DELIVERY_POLICIES)


def crash_points() -> st.SearchStrategy[CrashPoint]:
    """A named crash point (shrinks toward "before handling")."""
    return st.sampled_from(tuple(CrashPoint))


def domain_commands(domain: Domain, *args: Any, **kwargs: Any) -> st.SearchStrategy[Command]:
    """The hypothesis strategy of commands ``domain`` declares (``workload.strategies``);
    ``args`` and ``kwargs`` go to it (for the bank: account ids, ``max_amount=``...)."""
    w = domain.workload
    if w is None or w.strategies is None:
        raise ConfigError(
            f"domain {domain.name!r} declares no command strategies; set "
            "Workload(strategies=...) to a function returning a hypothesis strategy"
        )
    out: st.SearchStrategy[Command] = w.strategies(*args, **kwargs)
    return out


def bank_commands(
    accounts: Sequence[str] = ACCOUNTS, *, max_amount: int = 100, transfers: int = 5
) -> st.SearchStrategy[Command]:
    """The bank's commands: open, deposit, withdraw, transfer (ids ``t0``.. up to
    ``transfers``), amounts from 1 to ``max_amount``, on ``accounts``."""
    return domain_commands(load_domain(BANK), accounts, max_amount=max_amount, transfers=transfers)


def inventory_commands(
    skus: Sequence[str] = SKUS, orders: Sequence[str] = ORDERS, *, max_quantity: int = 10
) -> st.SearchStrategy[Command]:
    """The inventory's commands: add, restock, reserve, release, ship, on ``skus`` and
    ``orders``, quantities from 1 to ``max_quantity``."""
    return domain_commands(load_domain(INVENTORY), skus, orders, max_quantity=max_quantity)


def fault_actions(
    max_position: int,
    *,
    subscriptions: Sequence[str | None] = (None,),
    kinds: Sequence[str] = ("crash", *TRANSPORT_FAULTS),
    max_delay: float = 2.0,
) -> st.SearchStrategy[Action]:
    """One scripted fault at a position in ``1..max_position``.

    ``subscriptions``: which consumer each action may target (``None``: any).
    """
    if max_position < 1:
        raise ConfigError(f"max_position={max_position}: pass >= 1")
    unknown = sorted(set(kinds) - {"crash", *TRANSPORT_FAULTS})
    if unknown or not kinds:
        raise ConfigError(f"kinds={list(kinds)}: choose from crash, {', '.join(TRANSPORT_FAULTS)}")
    pos = st.integers(1, max_position)
    who = st.sampled_from(tuple(subscriptions))
    builders: dict[str, st.SearchStrategy[Action]] = {
        "crash": st.builds(CrashAt, pos, crash_points(), who),
        "drop": st.builds(DropAt, pos, who),
        "duplicate": st.builds(DuplicateAt, pos, who),
        "delay": st.builds(
            DelayAt, pos, st.integers(1, max(1, int(max_delay * 10))).map(lambda t: t / 10), who
        ),
        "reorder": st.builds(ReorderAt, pos, st.integers(1, 3), who),
    }
    return st.one_of([builders[k] for k in kinds])


def fault_plans(
    max_position: int = 20,
    *,
    max_actions: int = 4,
    subscriptions: Sequence[str | None] = (None,),
    kinds: Sequence[str] = ("crash", *TRANSPORT_FAULTS),
    redelivery_timeout: float = 1.0,
) -> st.SearchStrategy[FaultPlan]:
    """A scripted :class:`FaultPlan`: up to ``max_actions`` faults, listed by position.

    Scripted (not probabilistic) so that a failing example shrinks to the few faults that
    matter and prints as a readable schedule.
    """
    if max_actions < 0:
        raise ConfigError(f"max_actions={max_actions}: pass >= 0")
    action = fault_actions(max_position, subscriptions=subscriptions, kinds=kinds)
    return st.lists(action, max_size=max_actions).map(
        lambda acts: FaultPlan(
            actions=tuple(sorted(acts, key=lambda a: a.position)),
            redelivery_timeout=redelivery_timeout,
        )
    )
