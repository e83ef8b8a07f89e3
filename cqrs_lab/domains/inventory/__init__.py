"""Inventory with reservations: stock may be reserved, released or shipped, never below zero.

A domain of another shape than the bank (one aggregate per product, reservations keyed by
order, a view of available stock), built only on the public API and declared once as
:data:`domain`.

>>> from cqrs_lab.core import Engine
>>> from cqrs_lab.domains import inventory
>>> engine = Engine(seed=1)
>>> view = inventory.install(engine)
>>> _ = engine.dispatch(inventory.AddProduct("sku-1", "widget", 5))
>>> _ = engine.dispatch(inventory.Reserve("sku-1", "order-1", 3))
>>> _ = engine.pump()
>>> view.stock.get("sku-1")["available"]
2
"""

from __future__ import annotations

from typing import Any

from cqrs_lab.core import Domain, Engine, Invariant, Query, View
from cqrs_lab.core import install as install_domain
from cqrs_lab.domains.inventory.invariants import check_stock
from cqrs_lab.domains.inventory.product import (
    EVENTS,
    HANDLERS,
    AddProduct,
    GetReservation,
    GetStock,
    Product,
    ProductAdded,
    Release,
    ReservationReleased,
    ReservationShipped,
    Reserve,
    Restock,
    Restocked,
    Ship,
    StockReserved,
    StockView,
)
from cqrs_lab.domains.inventory.workload import WORKLOAD

__all__ = [
    "AddProduct",
    "GetReservation",
    "GetStock",
    "Product",
    "ProductAdded",
    "Release",
    "ReservationReleased",
    "ReservationShipped",
    "Reserve",
    "Restock",
    "Restocked",
    "Ship",
    "StockReserved",
    "StockView",
    "check_stock",
    "domain",
    "install",
]

#: the inventory, declared once
domain = Domain(
    name="inventory",
    description="Products with stock that orders reserve, release or ship",
    events=EVENTS,
    handlers=HANDLERS,
    aggregates=(Product,),
    views=(View("stock", StockView, "sku -> on hand, reserved, available; reservations"),),
    queries=(
        Query(GetStock, "stock", lambda v, q: v.stock.get(q.sku)),
        Query(GetReservation, "stock", lambda v, q: v.reservations.get((q.order_id, q.sku))),
    ),
    invariants=(Invariant("stock", check_stock, "stock never reserved beyond what is on hand"),),
    workload=WORKLOAD,
)


def install(engine: Engine, *, delivery: str = "effectively-once", **options: Any) -> StockView:
    """Install :data:`domain` on ``engine``; returns the stock view."""
    done = install_domain(engine, domain, delivery=delivery, **options)
    view = done.views["stock"]
    assert isinstance(view, StockView)
    return view
