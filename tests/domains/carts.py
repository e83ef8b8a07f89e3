"""A third domain, declared as the README's guide declares one: shopping carts.

Tests name it by reference (``tests.domains.carts:domain``), as a user names their own."""

from __future__ import annotations

from dataclasses import dataclass

from cqrs_lab.core import (
    Aggregate,
    Command,
    CommandKind,
    Domain,
    Draw,
    Envelope,
    Event,
    Param,
    Projection,
    Query,
    ReadKind,
    UnitOfWork,
    View,
    Workload,
    on,
)
from cqrs_lab.errors import CommandRefused


@dataclass(frozen=True, slots=True)
class AddItem(Command):
    cart_id: str
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ItemAdded(Event):
    cart_id: str
    sku: str
    quantity: int


class Cart(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.items = 0

    def add(self, c: AddItem) -> None:
        if not 0 < c.quantity <= 10 or self.items + c.quantity > 50:
            raise CommandRefused(f"cart {c.cart_id}: 1 to 10 at a time, 50 at most")
        self.record(ItemAdded(c.cart_id, c.sku, c.quantity))

    @on(ItemAdded)
    def _added(self, e: ItemAdded) -> None:
        self.items += e.quantity


class CartSizes(Projection):
    name = "cart-sizes"

    def __init__(self) -> None:
        super().__init__()
        self.sizes = self.table("sizes")

    @on(ItemAdded)
    def _added(self, e: ItemAdded, env: Envelope) -> None:
        self.sizes.put(e.cart_id, self.sizes.get(e.cart_id, 0) + e.quantity)


@dataclass(frozen=True, slots=True)
class GetCartSize:
    cart_id: str


def add_item(c: AddItem, uow: UnitOfWork) -> None:
    uow.load(Cart, f"cart-{c.cart_id}").add(c)


def _add(d: Draw) -> AddItem:
    return AddItem(d.key(), "sku-1", d.upto(d.params["most"]))


domain = Domain(
    name="carts",
    description="Shopping carts",
    events=(ItemAdded,),
    handlers={AddItem: add_item},
    views=(View("cart-sizes", CartSizes),),
    queries=(Query(GetCartSize, "cart-sizes", lambda view, q: view.sizes.get(q.cart_id)),),
    workload=Workload(
        population="carts",
        key=lambda i: f"cart-{i}",
        kinds=(CommandKind("add", AddItem, _add),),
        reads=(ReadKind("cart-sizes", lambda d: GetCartSize(d.key())),),
        params={"most": Param(3, "most items added at once", 1)},
    ),
)
