from __future__ import annotations

from cqrs_lab.core import ANY, Engine, Envelope, ManualClock, Projection, RawEvent, on
from cqrs_lab.domains import bank
from tests.core.helpers import Ticked


class Seen(Projection):
    name = "seen"

    def __init__(self) -> None:
        super().__init__()
        self.rows = self.table("rows")

    @on(Ticked)
    def _ticked(self, e: Ticked, env: Envelope) -> None:
        self.rows.put(env.position, (e.n, type(env.payload).__name__, env.schema_version))


def test_handlers_get_the_decoded_event_in_the_envelope_too() -> None:
    engine = Engine(clock=ManualClock())
    engine.registry.register(Ticked)
    seen = Seen()
    engine.subscribe(seen)
    engine.store.append("s", [RawEvent("Ticked", 1, {"n": 5})], ANY)  # stored form
    engine.pump()
    assert seen.rows.get(1) == (5, "Ticked", 1)


def test_bank_statements_from_stored_form_events() -> None:
    engine = Engine(clock=ManualClock())
    bank.install(engine)
    engine.store.append("account-a", [RawEvent("AccountOpened", 1, {
        "account_id": "a", "owner": "ann", "opening_balance": 7})], ANY)  # fmt: skip
    engine.store.append(
        "account-a", [RawEvent("Deposited", 1, {"account_id": "a", "amount": 3})], ANY
    )
    engine.pump()
    lines = engine.ask(bank.GetStatement("a")).value
    assert [(line["kind"], line["amount"]) for line in lines] == [("opened", 7), ("deposit", 3)]
    assert engine.ask(bank.GetBalance("a")).value == 10
