"""The tracking-store contract, written once. Every adapter's test subclasses it.

A subclass provides ``make()`` returning a fresh, empty store, and, for a durable adapter,
``reopen(store)`` returning a new instance over the same storage (the default returns the
same object, which is what reopening means for memory)::

    class TestInMemoryTracking(TrackingContract):
        def make(self) -> TrackingStore:
            return InMemoryTracking()
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqrs_lab.core import Progress
from cqrs_lab.core.tracking import TrackingStore

KEYS = ("", "balances", "balances/p3", "balances/p3/x", "ü/ß/漢字", "a\x00b", "a\x00c")


def progress(watermark: int, *above: int) -> Progress:
    record = Progress(watermark)
    record.above = set(above)
    return record


def as_tuple(record: Progress) -> tuple[int, list[int]]:
    return record.watermark, sorted(record.above)


# a record: a watermark and gaps above it (positions may be non-contiguous, as after a crash)
records = st.builds(
    lambda wm, deltas: progress(wm, *(wm + d for d in deltas)),
    st.integers(0, 10**6),
    st.sets(st.integers(1, 10**4), max_size=8),
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), st.sampled_from(KEYS[:4]), records),
        st.tuples(st.just("reset"), st.sampled_from(KEYS[:4]), st.none()),
        st.tuples(st.just("load"), st.sampled_from(KEYS[:4]), st.none()),
        st.tuples(st.just("reopen"), st.none(), st.none()),
    ),
    max_size=30,
)


class TrackingContract:
    """What every tracking store must do. Subclasses implement :meth:`make`."""

    def make(self) -> TrackingStore:
        raise NotImplementedError

    def reopen(self, store: TrackingStore) -> TrackingStore:
        """A new instance over ``store``'s storage (memory: the same object)."""
        return store

    # -- load and commit -------------------------------------------------------------------
    def test_a_key_never_committed_loads_empty(self) -> None:
        store = self.make()
        assert as_tuple(store.load("balances")) == (0, [])
        assert as_tuple(store.load("")) == (0, [])
        assert store.keys() == []

    def test_watermark_and_above_round_trip(self) -> None:
        store = self.make()
        store.commit("balances", progress(7, 9, 12, 10))
        loaded = store.load("balances")
        assert isinstance(loaded, Progress)
        assert as_tuple(loaded) == (7, [9, 10, 12])
        assert loaded.contains(7) and loaded.contains(10) and not loaded.contains(8)

    def test_an_empty_record_is_still_a_record(self) -> None:
        store = self.make()
        store.commit("balances", Progress())
        assert store.keys() == ["balances"]
        assert as_tuple(store.load("balances")) == (0, [])

    def test_commit_stores_a_snapshot(self) -> None:
        store = self.make()
        record = progress(3, 5)
        store.commit("balances", record)
        record.add(4)  # fills the gap: watermark 5, above empty
        record.add(9)
        record.above.add(11)
        assert as_tuple(record) == (5, [9, 11])
        assert as_tuple(store.load("balances")) == (3, [5])

    def test_load_returns_a_copy(self) -> None:
        store = self.make()
        store.commit("balances", progress(3, 5))
        loaded = store.load("balances")
        loaded.add(4)
        loaded.above.add(20)
        loaded.watermark = 100
        assert as_tuple(store.load("balances")) == (3, [5])
        assert store.load("balances") is not store.load("balances")

    def test_a_later_commit_replaces_the_record(self) -> None:
        store = self.make()
        store.commit("balances", progress(3, 5, 8))
        store.commit("balances", progress(10))
        assert as_tuple(store.load("balances")) == (10, [])  # no stale gaps left behind
        store.commit("balances", progress(2, 4))  # a rebuild may move the watermark back
        assert as_tuple(store.load("balances")) == (2, [4])
        assert store.keys() == ["balances"]

    # -- keys ------------------------------------------------------------------------------
    def test_keys_are_independent(self) -> None:
        store = self.make()
        for n, key in enumerate(KEYS):
            store.commit(key, progress(n, n + 2))
        for n, key in enumerate(KEYS):
            assert as_tuple(store.load(key)) == (n, [n + 2]), key
        store.commit("balances/p3", progress(99))
        assert as_tuple(store.load("balances")) == (1, [3])
        assert as_tuple(store.load("balances/p3/x")) == (3, [5])
        assert as_tuple(store.load("balances/p")) == (0, [])  # no prefix matching

    def test_keys_lists_committed_keys_sorted(self) -> None:
        store = self.make()
        for key in reversed(KEYS):
            store.commit(key, progress(1))
        store.commit("balances", progress(2))  # committed twice: listed once
        assert store.keys() == sorted(KEYS)
        assert store.keys()[0] == ""

    def test_reset_forgets_one_key(self) -> None:
        store = self.make()
        store.commit("balances/p0", progress(4, 6))
        store.commit("balances/p1", progress(5))
        store.reset("balances/p0")
        assert as_tuple(store.load("balances/p0")) == (0, [])
        assert as_tuple(store.load("balances/p1")) == (5, [])
        assert store.keys() == ["balances/p1"]
        store.reset("balances/p0")  # resetting what is not there is a no-op
        store.reset("never")
        assert store.keys() == ["balances/p1"]
        store.commit("balances/p0", progress(1))  # and a reset key can be committed again
        assert store.keys() == ["balances/p0", "balances/p1"]

    # -- size and durability ---------------------------------------------------------------
    def test_a_large_sparse_set_round_trips(self) -> None:
        store = self.make()
        above = set(range(1_002, 41_002, 4))  # 10,000 gaps
        record = progress(1_000, *above)
        store.commit("balances", record)
        store = self.reopen(store)
        loaded = store.load("balances")
        assert loaded.watermark == 1_000 and loaded.above == above
        loaded.add(1_001)  # a loaded record is a working Progress
        assert loaded.watermark == 1_002

    def test_records_survive_reopening(self) -> None:
        store = self.make()
        store.commit("", progress(12, 14))
        store.commit("balances/p1", progress(5))
        store.commit("gone", progress(1))
        store.reset("gone")
        store = self.reopen(store)
        assert store.keys() == ["", "balances/p1"]
        assert as_tuple(store.load("")) == (12, [14])
        assert as_tuple(store.load("balances/p1")) == (5, [])
        store.commit("balances/p1", progress(6))  # and the reopened store takes commits
        assert as_tuple(self.reopen(store).load("balances/p1")) == (6, [])

    # -- the model -------------------------------------------------------------------------
    # one base-class method runs once per adapter class (hypothesis's "differing executors");
    # its examples do not depend on the adapter, so sharing them between adapters is sound
    @settings(
        suppress_health_check=[
            *settings().suppress_health_check,
            HealthCheck.differing_executors,
        ]
    )
    @given(ops=operations)
    def test_agrees_with_a_dict_of_copies(
        self, ops: list[tuple[str, str | None, Progress | None]]
    ) -> None:
        store = self.make()
        model: dict[str, Progress] = {}
        for op, key, record in ops:
            if op == "commit":
                assert key is not None and record is not None
                store.commit(key, record)
                model[key] = record.copy()
                record.add(record.watermark + 1)  # later changes stay out of the store
            elif op == "reset":
                assert key is not None
                store.reset(key)
                model.pop(key, None)
            elif op == "load":
                assert key is not None
                loaded = store.load(key)
                assert as_tuple(loaded) == as_tuple(model.get(key, Progress()))
                loaded.raise_to(loaded.watermark + 5)  # changing a copy changes nothing
            else:
                store = self.reopen(store)
            assert store.keys() == sorted(model)
        for key in KEYS[:4]:
            assert as_tuple(store.load(key)) == as_tuple(model.get(key, Progress()))
