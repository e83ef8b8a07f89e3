from __future__ import annotations

import math
import random

import pytest

from cqrs_lab.core import (
    CrashAt,
    DuplicateAt,
    FaultPlan,
    Histogram,
    ManualClock,
    Metrics,
    Progress,
    SequentialIds,
    Table,
    UuidIds,
)
from cqrs_lab.core.readmodel import rollback
from cqrs_lab.errors import ConfigError


def test_table_queries() -> None:
    t = Table("people")
    for i, (name, age) in enumerate([("ann", 31), ("bob", 25), ("cy", 31), ("di", 40)]):
        t.put(i, {"name": name, "age": age})
    assert [r["name"] for r in t.filter(age=31)] == ["ann", "cy"]
    assert [r["name"] for r in t.filter(lambda r: r["age"] > 30, age=40)] == ["di"]
    assert [r["name"] for r in t.order_by("age")] == ["bob", "ann", "cy", "di"]
    assert [r["name"] for r in t.order_by("age", descending=True, limit=2)] == ["di", "ann"]
    assert t.get(9) is None and 2 in t and len(t) == 4


def test_table_writes_roll_back_in_reverse_order() -> None:
    t = Table("t")
    t.put("a", 1)
    t.append("log", "x")
    undo: list = []
    t._undo = undo
    t.put("a", 2)
    t.put("b", 3)
    t.delete("a")
    t.append("log", "y")
    t.append("new", "z")
    mark = len(undo)
    t.put("c", 4)
    rollback(undo, mark)
    assert "c" not in t
    rollback(undo)
    assert t.to_dict() == {"a": 1, "log": ["x"]}


def test_progress_tracks_a_contiguous_watermark_and_gaps() -> None:
    p = Progress()
    for pos in (2, 5, 1, 3):
        p.add(pos)
    assert p.watermark == 3 and p.above == {5}
    assert p.contains(5) and not p.contains(4)
    p.add(4)
    assert p.watermark == 5 and p.above == set()
    q = p.copy()
    q.add(6)
    assert p.watermark == 5


def test_histogram_quantiles_bound_the_truth() -> None:
    h = Histogram()
    rng = random.Random(1)
    values = [rng.expovariate(10.0) for _ in range(10_000)]
    for v in values:
        h.observe(v)
    exact = sorted(values)[int(0.99 * len(values))]
    assert exact <= h.quantile(0.99) <= exact * 1.8  # bucket upper bound, log-spaced by 1.78
    assert h.count == 10_000 and math.isclose(h.mean, sum(values) / len(values))
    with pytest.raises(ConfigError):
        h.quantile(1.5)


def test_metrics_registry_keys_by_labels() -> None:
    m = Metrics()
    m.counter("x", a="1").inc()
    m.counter("x", a="1").inc(2)
    m.counter("x", a="2").inc()
    assert m.snapshot()["x{a=1}"] == 3 and m.snapshot()["x{a=2}"] == 1


def test_clocks_and_ids() -> None:
    c = ManualClock(1.0)
    c.advance(2.0)
    c.advance_to(2.5)  # earlier: ignored
    assert c.now() == 3.0
    with pytest.raises(ConfigError, match="cannot go back"):
        c.advance(-1)
    ids = SequentialIds("e-")
    assert [ids(), ids()] == ["e-1", "e-2"]
    assert UuidIds(random.Random(4))() == UuidIds(random.Random(4))()


def test_fault_plan_validates_and_describes_itself() -> None:
    with pytest.raises(ConfigError, match=r"drop=1\.5"):
        FaultPlan(drop=1.5)
    with pytest.raises(ConfigError, match="reorder_window"):
        FaultPlan(reorder_window=0)
    plan = FaultPlan(actions=(CrashAt(7), DuplicateAt(9)), drop=0.1)
    assert str(plan) == (
        "crash the consumer after handling, before the checkpoint event 7; "
        "duplicate event 9; drop p=0.1"
    )
    assert FaultPlan().empty and not plan.empty
    assert plan.for_subscription("x").actions == plan.actions
    only = FaultPlan(actions=(CrashAt(1, subscription="a"),))
    assert only.for_subscription("b").actions == ()
