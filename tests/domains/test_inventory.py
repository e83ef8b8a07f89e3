from __future__ import annotations

import random

import pytest

from cqrs_lab.core import Engine, ManualClock
from cqrs_lab.domains import inventory as inv
from cqrs_lab.errors import CommandRefused


def test_reservations_never_drive_stock_below_zero() -> None:
    engine = Engine(clock=ManualClock(), seed=4)
    inv.install(engine)
    rng = random.Random(4)
    for sku in ("a", "b"):
        engine.dispatch(inv.AddProduct(sku, sku.upper(), 10))
    open_orders: list[tuple[str, str]] = []
    refused = 0
    for n in range(500):
        sku = rng.choice("ab")
        action = rng.choice(["reserve", "reserve", "release", "ship", "restock"])
        try:
            if action == "reserve":
                engine.dispatch(inv.Reserve(sku, f"o{n}", rng.randint(1, 6)))
                open_orders.append((sku, f"o{n}"))
            elif action in ("release", "ship") and open_orders:
                s, order = open_orders.pop(rng.randrange(len(open_orders)))
                cmd = inv.Release(s, order) if action == "release" else inv.Ship(s, order)
                engine.dispatch(cmd)
            elif action == "restock":
                engine.dispatch(inv.Restock(sku, rng.randint(1, 3)))
        except CommandRefused:
            refused += 1
        product = engine.repository.load(inv.Product, f"product-{sku}")
        assert product.available >= 0 and product.on_hand >= 0
    engine.pump()
    assert refused > 0  # the rule was exercised
    for sku in "ab":
        product = engine.repository.load(inv.Product, f"product-{sku}")
        row = engine.ask(inv.GetStock(sku)).value
        assert (row["on_hand"], row["available"]) == (product.on_hand, product.available)
        assert row["available"] >= 0


def test_inventory_rules_read_well() -> None:
    engine = Engine(seed=1)
    inv.install(engine)
    engine.dispatch(inv.AddProduct("a", "A", 2))
    with pytest.raises(CommandRefused, match="not enough a: 2 available, 3 asked"):
        engine.dispatch(inv.Reserve("a", "o1", 3))
    with pytest.raises(CommandRefused, match="holds no reservation"):
        engine.dispatch(inv.Ship("a", "o1"))
    with pytest.raises(CommandRefused, match="does not exist"):
        engine.dispatch(inv.Restock("zz", 1))
