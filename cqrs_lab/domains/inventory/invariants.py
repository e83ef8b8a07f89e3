"""The inventory's invariant, read from the log: stock is never reserved beyond what is on
hand, and each reservation ends (released or shipped) at most once.

>>> from cqrs_lab.core import Engine
>>> from cqrs_lab.domains import inventory
>>> engine = Engine(seed=1)
>>> _ = inventory.install(engine)
>>> _ = engine.dispatch(inventory.AddProduct("s", "x", 2))
>>> _ = engine.dispatch(inventory.Reserve("s", "o", 2))
>>> check_stock(engine).ok
True
"""

from __future__ import annotations

from cqrs_lab.checks.report import CheckReport, Violation, verdict
from cqrs_lab.core import Engine, RawEvent
from cqrs_lab.domains.inventory.product import (
    ProductAdded,
    ReservationReleased,
    ReservationShipped,
    Restocked,
    StockReserved,
)

__all__ = ["check_stock"]


def check_stock(engine: Engine) -> CheckReport:
    """Fold the log per product: available stock never below zero, no double ending."""
    on_hand: dict[str, int] = {}
    held: dict[tuple[str, str], int] = {}
    bad: list[Violation] = []
    for env in engine.store.read_all():
        e = env.payload
        if type(e) is RawEvent:
            e = engine.store.registry.decode(e)
        where = {"position": env.position, "stream": env.stream_id, "type": type(e).__name__}
        if isinstance(e, ProductAdded):
            on_hand[e.sku] = e.initial_stock
        elif isinstance(e, Restocked):
            on_hand[e.sku] = on_hand.get(e.sku, 0) + e.quantity
        elif isinstance(e, StockReserved):
            held[(e.sku, e.order_id)] = e.quantity
            reserved = sum(q for (s, _), q in held.items() if s == e.sku)
            if reserved > on_hand.get(e.sku, 0):
                bad.append(
                    Violation(
                        f"{e.sku}: {reserved} reserved with {on_hand.get(e.sku, 0)} on hand",
                        (where,),
                    )
                )
        elif isinstance(e, (ReservationReleased, ReservationShipped)):
            if held.pop((e.sku, e.order_id), None) is None:
                bad.append(
                    Violation(f"{e.sku}: order {e.order_id} ended twice or unheld", (where,))
                )
            elif isinstance(e, ReservationShipped):
                on_hand[e.sku] = on_hand.get(e.sku, 0) - e.quantity
    report = CheckReport("inventory")
    report.add(
        verdict(
            "inventory: stock never over-reserved", bad,
            ok=f"{len(on_hand)} products never reserved beyond stock",
            bad="{n} events broke the stock rule",
        )
    )  # fmt: skip
    return report
