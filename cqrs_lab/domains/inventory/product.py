"""The inventory's messages, its Product aggregate, the stock view and its queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cqrs_lab.core import Aggregate, Command, Envelope, Event, Projection, UnitOfWork, on
from cqrs_lab.errors import CommandRefused

__all__ = [
    "EVENTS",
    "HANDLERS",
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
]


@dataclass(frozen=True, slots=True)
class AddProduct(Command):
    sku: str
    name: str
    initial_stock: int = 0


@dataclass(frozen=True, slots=True)
class Restock(Command):
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Reserve(Command):
    sku: str
    order_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Release(Command):
    sku: str
    order_id: str


@dataclass(frozen=True, slots=True)
class Ship(Command):
    sku: str
    order_id: str


@dataclass(frozen=True, slots=True)
class ProductAdded(Event):
    sku: str
    name: str
    initial_stock: int


@dataclass(frozen=True, slots=True)
class Restocked(Event):
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class StockReserved(Event):
    sku: str
    order_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ReservationReleased(Event):
    sku: str
    order_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ReservationShipped(Event):
    sku: str
    order_id: str
    quantity: int


EVENTS = (ProductAdded, Restocked, StockReserved, ReservationReleased, ReservationShipped)


def _quantity(q: int) -> None:
    if type(q) is not int or q <= 0:
        raise CommandRefused(f"quantity must be a whole number > 0, got {q!r}")


class Product(Aggregate):
    """Stock on hand and open reservations; ``on_hand - reserved`` never goes below zero."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.sku = ""
        self.on_hand = 0
        self.reservations: dict[str, int] = {}

    @property
    def available(self) -> int:
        return self.on_hand - sum(self.reservations.values())

    def _exists(self) -> None:
        if not self.sku:
            raise CommandRefused(f"product {self.id.removeprefix('product-')} does not exist")

    def add(self, cmd: AddProduct) -> None:
        if self.sku:
            raise CommandRefused(f"product {cmd.sku} already exists")
        if type(cmd.initial_stock) is not int or cmd.initial_stock < 0:
            raise CommandRefused(
                f"initial stock must be a whole number >= 0, got {cmd.initial_stock!r}"
            )
        self.record(ProductAdded(cmd.sku, cmd.name, cmd.initial_stock))

    def restock(self, quantity: int) -> None:
        self._exists()
        _quantity(quantity)
        self.record(Restocked(self.sku, quantity))

    def reserve(self, order_id: str, quantity: int) -> None:
        self._exists()
        _quantity(quantity)
        if order_id in self.reservations:
            raise CommandRefused(f"order {order_id} already holds a reservation of {self.sku}")
        if quantity > self.available:
            raise CommandRefused(
                f"not enough {self.sku}: {self.available} available, {quantity} asked"
            )
        self.record(StockReserved(self.sku, order_id, quantity))

    def _held(self, order_id: str) -> int:
        self._exists()
        held = self.reservations.get(order_id)
        if held is None:
            raise CommandRefused(f"order {order_id} holds no reservation of {self.sku}")
        return held

    def release(self, order_id: str) -> None:
        self.record(ReservationReleased(self.sku, order_id, self._held(order_id)))

    def ship(self, order_id: str) -> None:
        self.record(ReservationShipped(self.sku, order_id, self._held(order_id)))

    @on(ProductAdded)
    def _added(self, e: ProductAdded) -> None:
        self.sku, self.on_hand = e.sku, e.initial_stock

    @on(Restocked)
    def _restocked(self, e: Restocked) -> None:
        self.on_hand += e.quantity

    @on(StockReserved)
    def _reserved(self, e: StockReserved) -> None:
        self.reservations[e.order_id] = e.quantity

    @on(ReservationReleased)
    def _released(self, e: ReservationReleased) -> None:
        del self.reservations[e.order_id]

    @on(ReservationShipped)
    def _shipped(self, e: ReservationShipped) -> None:
        del self.reservations[e.order_id]
        self.on_hand -= e.quantity


def _product(uow: UnitOfWork, sku: str) -> Product:
    return uow.load(Product, f"product-{sku}")


HANDLERS: dict[type[Command], Any] = {
    AddProduct: lambda c, uow: _product(uow, c.sku).add(c),
    Restock: lambda c, uow: _product(uow, c.sku).restock(c.quantity),
    Reserve: lambda c, uow: _product(uow, c.sku).reserve(c.order_id, c.quantity),
    Release: lambda c, uow: _product(uow, c.sku).release(c.order_id),
    Ship: lambda c, uow: _product(uow, c.sku).ship(c.order_id),
}


class StockView(Projection):
    """``stock``: sku -> on hand, reserved, available; ``reservations``: order -> holdings."""

    name = "stock"

    def __init__(self) -> None:
        super().__init__()
        self.stock = self.table("stock")
        self.reservations = self.table("reservations")

    def _move(self, sku: str, on_hand: int = 0, reserved: int = 0) -> None:
        row = self.stock.get(sku) or {"sku": sku, "on_hand": 0, "reserved": 0}
        on_hand += row["on_hand"]
        reserved += row["reserved"]
        self.stock.put(
            sku, {**row, "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved}
        )

    @on(ProductAdded)
    def _added(self, e: ProductAdded, env: Envelope) -> None:
        self.stock.put(e.sku, {"sku": e.sku, "name": e.name, "on_hand": 0, "reserved": 0})
        self._move(e.sku, on_hand=e.initial_stock)

    @on(Restocked)
    def _restocked(self, e: Restocked, env: Envelope) -> None:
        self._move(e.sku, on_hand=e.quantity)

    @on(StockReserved)
    def _reserved(self, e: StockReserved, env: Envelope) -> None:
        self._move(e.sku, reserved=e.quantity)
        self.reservations.put(
            (e.order_id, e.sku),
            {"order_id": e.order_id, "sku": e.sku, "quantity": e.quantity, "status": "held"},
        )

    @on(ReservationReleased)
    def _released(self, e: ReservationReleased, env: Envelope) -> None:
        self._move(e.sku, reserved=-e.quantity)
        self.reservations.update((e.order_id, e.sku), status="released")

    @on(ReservationShipped)
    def _shipped(self, e: ReservationShipped, env: Envelope) -> None:
        self._move(e.sku, on_hand=-e.quantity, reserved=-e.quantity)
        self.reservations.update((e.order_id, e.sku), status="shipped")


@dataclass(frozen=True, slots=True)
class GetStock:
    sku: str


@dataclass(frozen=True, slots=True)
class GetReservation:
    order_id: str
    sku: str
