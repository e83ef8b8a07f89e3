from cqrs_lab.core import EventRegistry, InMemoryEventStore, ManualClock, SequentialIds
from tests.contract.store_contract import EventStoreContract


class TestInMemoryEventStore(EventStoreContract):
    def make_store(
        self, clock: ManualClock, ids: SequentialIds, registry: EventRegistry
    ) -> InMemoryEventStore:
        return InMemoryEventStore(clock, ids, registry)
