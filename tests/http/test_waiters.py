"""Readers waiting for a position are woken when the projection reaches it, and only then;
given-up waiters do not pile up behind a stuck projection."""

from __future__ import annotations

import asyncio

from cqrs_lab.domains.inventory import AddProduct
from cqrs_lab.http import ServerConfig, build_engine
from cqrs_lab.http.driver import Driver
from cqrs_lab.http.waiters import PURGE_AT, PositionWaiters


def test_only_the_waiters_whose_position_was_reached_are_woken() -> None:
    async def run() -> tuple[list[bool], int]:
        w = PositionWaiters()
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in range(10)]
        for i, f in enumerate(futs):
            w.add("stock", i + 1, f)
        w.wake({"stock": 4}.__getitem__)
        return [f.done() for f in futs], len(w)

    done, left = asyncio.run(run())
    assert done == [True] * 4 + [False] * 6
    assert left == 6


def test_given_up_waiters_behind_a_stuck_projection_are_purged() -> None:
    async def run() -> int:
        w = PositionWaiters()
        loop = asyncio.get_running_loop()
        live = loop.create_future()
        w.add("stock", 10, live)
        for _ in range(10 * PURGE_AT):  # readers that gave up (cancelled by their timeout)
            f = loop.create_future()
            w.add("stock", 10, f)
            f.cancel()
        return len(w)

    assert asyncio.run(run()) < 2 * PURGE_AT


def test_a_read_waits_for_its_position_and_gives_up_after_its_budget() -> None:
    config = ServerConfig(domain="cqrs_lab.domains.inventory")
    engine = build_engine(config).engine

    async def run() -> tuple[bool, bool, bool]:
        driver = Driver(engine, config)
        await driver.start()
        result = await driver.submit(lambda: engine.dispatch(AddProduct("sku-1", "pen", 3)))
        reached = await driver.wait_for("stock", result.position, 2.0)
        beyond = await driver.wait_for("stock", result.position + 5, 0.05)  # never appended
        await driver.stop()
        return reached, beyond, engine.subscription("stock").position >= result.position

    reached, beyond, applied = asyncio.run(run())
    assert reached and applied
    assert not beyond
