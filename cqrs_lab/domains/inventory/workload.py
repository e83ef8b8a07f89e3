"""The inventory's workload: products as keys; orders reserve, release, ship; restocks.

A release or a shipment names the last order that reserved the product in this generator
(kept in :attr:`~cqrs_lab.core.Draw.memo`), so most of them act on a real reservation.

>>> import random
>>> from cqrs_lab.core import Draw
>>> d = Draw(random.Random(0), WORKLOAD, keys=3, params=WORKLOAD.defaults())
>>> d.index, d.seq = 1, 5
>>> reserve(d), ship(d)
(Reserve(sku='sku-1', order_id='o5', quantity=9), Ship(sku='sku-1', order_id='o5'))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cqrs_lab.core import Command, CommandKind, Draw, Param, ReadKind, Workload
from cqrs_lab.domains.inventory.product import (
    AddProduct,
    GetStock,
    Release,
    Reserve,
    Restock,
    Ship,
)
from cqrs_lab.errors import ConfigError

__all__ = ["ORDERS", "SKUS", "WORKLOAD", "commands", "product_key", "reserve", "ship"]

SKUS = ("sku-1", "sku-2")
ORDERS = ("o1", "o2", "o3")


def product_key(index: int) -> str:
    return f"sku-{index}"


def add_product(d: Draw) -> AddProduct:
    return AddProduct(d.key(), f"item-{d.index}", d.params["initial_stock"])


def restock(d: Draw) -> Restock:
    return Restock(d.key(), d.upto(d.params["max_quantity"]))


def reserve(d: Draw) -> Reserve:
    order = f"o{d.seq}"
    d.memo[d.index] = order
    return Reserve(d.key(), order, d.upto(d.params["max_quantity"]))


def _held(d: Draw) -> str:
    return d.memo.pop(d.index, None) or f"o{d.seq}"


def release(d: Draw) -> Release:
    return Release(d.key(), _held(d))


def ship(d: Draw) -> Ship:
    return Ship(d.key(), _held(d))


def commands(
    skus: Sequence[str] = SKUS, orders: Sequence[str] = ORDERS, *, max_quantity: int = 10
) -> Any:
    """Hypothesis strategy of inventory commands: add, restock, reserve, release, ship."""
    from hypothesis import strategies as st

    if max_quantity < 1:
        raise ConfigError(f"max_quantity={max_quantity}: pass >= 1")
    if not skus or not orders:
        raise ConfigError("skus and orders: pass at least one id each")
    sku, order = st.sampled_from(tuple(skus)), st.sampled_from(tuple(orders))
    qty = st.integers(1, max_quantity)
    out: st.SearchStrategy[Command] = st.one_of(
        st.builds(AddProduct, sku, st.just("item"), st.integers(0, max_quantity)),
        st.builds(Restock, sku, qty),
        st.builds(Reserve, sku, order, qty),
        st.builds(Release, sku, order),
        st.builds(Ship, sku, order),
    )
    return out


WORKLOAD = Workload(
    population="products",
    key=product_key,
    setup=add_product,
    kinds=(
        CommandKind("reserve", Reserve, reserve, 0.45),
        CommandKind("ship", Ship, ship, 0.25),
        CommandKind("release", Release, release, 0.15),
        CommandKind("restock", Restock, restock, 0.15),
    ),
    reads=(ReadKind("stock", lambda d: GetStock(d.key())),),
    params={
        "initial_stock": Param(100, "units each product starts with", 0),
        "max_quantity": Param(10, "largest quantity reserved or restocked (uniform from 1)", 1),
    },
    default_population=200,
    strategies=commands,
)
