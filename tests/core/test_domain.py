"""The one install for the in-process engine: it wires exactly what a domain declares, refuses
an inconsistent declaration by naming the part, and a broken view is loud in the checks."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from cqrs_lab.checks import ApplicationLog, check_engine, quiesce
from cqrs_lab.core import (
    Aggregate,
    Command,
    CommandKind,
    Domain,
    Engine,
    Envelope,
    Event,
    ManualClock,
    Projection,
    Query,
    UnitOfWork,
    View,
    Workload,
    install,
    load_domain,
    on,
)
from cqrs_lab.domains import bank, inventory
from cqrs_lab.errors import ConfigError, DomainError

DOMAINS = [bank.domain, inventory.domain]


@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: d.name)
def test_install_wires_exactly_what_the_domain_declares(domain: Domain) -> None:
    engine = Engine(seed=1)
    installed = install(engine, domain)

    assert set(engine.bus.handlers) == set(domain.handlers)
    assert all(engine.registry.knows(e.event_type()) for e in domain.events)
    assert set(engine.subscriptions) == set(domain.view_names) == set(installed.views)
    assert {s.name for s in installed.subscriptions.values()} == set(domain.view_names)
    assert set(engine.queries.routes()) == {q.type for q in domain.queries}
    assert engine.installed == [installed] and installed.domain is domain


def test_the_bank_without_its_saga_leaves_the_saga_and_its_query_out() -> None:
    engine = Engine(seed=1)
    app = bank.install(engine, saga=False)

    assert set(engine.subscriptions) == {"balances", "statements"} == set(app.subscriptions)
    routes = set(engine.queries.routes())
    assert bank.GetTransfer not in routes
    assert routes == {q.type for q in bank.domain.queries} - {bank.GetTransfer}
    # the handlers are the whole domain's: the saga's commands are there, only unfed
    assert set(engine.bus.handlers) == set(bank.domain.handlers)


def test_install_refuses_a_view_the_domain_does_not_declare() -> None:
    with pytest.raises(DomainError, match=r"no view 'ledger'.*balances, statements"):
        install(Engine(seed=1), bank.domain, views=["balances", "ledger"])


# -- a small domain declared here --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rang(Event):
    bell: str


@dataclass(frozen=True, slots=True)
class Ring(Command):
    bell: str


@dataclass(frozen=True, slots=True)
class Silence(Command):
    internal = True
    bell: str


@dataclass(frozen=True, slots=True)
class GetPeals:  # a query is any class
    bell: str


class Bell(Aggregate):
    @on(Rang)
    def _rang(self, e: Rang) -> None:
        pass


class Peals(Projection):
    name = "peals"

    def __init__(self) -> None:
        super().__init__()
        self.count = self.table("count")

    @on(Rang)
    def _rang(self, e: Rang, env: object) -> None:
        self.count.put(e.bell, self.count.get(e.bell, 0) + 1)


class BrokenPeals(Peals):
    """The handler forgot the envelope: every event raises TypeError."""

    name = "peals"

    @on(Rang)
    def _rang(self, e: Rang) -> None:  # type: ignore[override]
        self.count.put(e.bell, 1)


def ring(cmd: Ring | Silence, uow: UnitOfWork) -> None:
    uow.load(Bell, cmd.bell).record(Rang(cmd.bell))


def bells(view: type[Projection] = Peals, **parts: object) -> Domain:
    declared: dict[str, object] = {
        "name": "bells",
        "description": "bells that ring",
        "events": (Rang,),
        "handlers": {Ring: ring, Silence: ring},
        "views": (View("peals", view),),
        "queries": (Query(GetPeals, "peals", lambda v, q: v.count.get(q.bell)),),
    }
    return Domain(**{**declared, **parts})  # type: ignore[arg-type]


def test_a_small_domain_installs_and_answers_its_query() -> None:
    engine = Engine(clock=ManualClock(), seed=1)
    install(engine, bells())
    position = engine.dispatch(Ring("big-ben")).position
    engine.pump()
    assert engine.ask(GetPeals("big-ben"), min_position=position).value == 1


def test_a_query_of_an_undeclared_view_is_refused_naming_both() -> None:
    orphan = Query(GetPeals, "chimes", lambda v, q: None)
    with pytest.raises(DomainError, match=r"domain 'bells': query GetPeals reads view 'chimes'"):
        bells(queries=(orphan,))


def test_a_workload_that_sends_an_internal_command_is_refused() -> None:
    workload = Workload(
        population="bells",
        key=lambda i: f"bell-{i}",
        kinds=(CommandKind("silence", Silence, lambda d: Silence(d.key())),),
    )
    with pytest.raises(DomainError, match="kind 'silence' sends internal command Silence"):
        bells(workload=workload)


def test_a_workload_that_sends_a_command_without_handler_is_refused() -> None:
    workload = Workload(
        population="bells",
        key=lambda i: f"bell-{i}",
        kinds=(CommandKind("ring", Ring, lambda d: Ring(d.key())),),
    )
    with pytest.raises(DomainError, match="kind 'ring' sends Ring, which has no handler"):
        bells(handlers={Silence: ring}, workload=workload)


@pytest.mark.parametrize(
    ("ref", "said"),
    [
        (
            "cqrs_lab.domains.no_such_domain",
            "cannot import module 'cqrs_lab.domains.no_such_domain'",
        ),
        ("cqrs_lab.domains.bank:nothing", "has no attribute 'nothing'"),
        ("tests.core.test_domain:bells", "has no attribute 'bells' that is a cqrs_lab.core.Domain"),
        ("tests.core.test_domain", "has no attribute 'domain' that is a cqrs_lab.core.Domain"),
        ("  ", "name a module"),
        (":domain", "name the module before the colon"),
    ],
)
def test_load_domain_names_the_reference_it_cannot_resolve(ref: str, said: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_domain(ref)
    assert said in str(info.value) and repr(ref) in str(info.value)


def test_load_domain_resolves_a_module_and_an_object() -> None:
    module = types.ModuleType("bells_for_test")
    module.domain = module.other = bells()  # type: ignore[attr-defined]
    sys.modules["bells_for_test"] = module
    try:
        assert load_domain("bells_for_test") is module.domain  # type: ignore[attr-defined]
        assert load_domain("bells_for_test:other") is module.other  # type: ignore[attr-defined]
    finally:
        del sys.modules["bells_for_test"]
    assert load_domain("cqrs_lab.domains.bank") is bank.domain
    assert load_domain(inventory.domain) is inventory.domain


def test_load_domain_reports_a_user_module_that_fails_to_import(tmp_path: Path) -> None:
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('no database')\n")
    (tmp_path / "bad_syntax.py").write_text("def broken(:\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ConfigError, match="RuntimeError: no database"):
            load_domain("raises_on_import")
        with pytest.raises(ConfigError, match="SyntaxError"):
            load_domain("bad_syntax:domain")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("raises_on_import", None)


def test_load_domain_follows_dotted_attributes() -> None:
    module = types.ModuleType("nested_for_test")
    module.registry = types.SimpleNamespace(shop=bells())  # type: ignore[attr-defined]
    sys.modules["nested_for_test"] = module
    try:
        assert load_domain("nested_for_test:registry.shop") is module.registry.shop  # type: ignore[attr-defined]
    finally:
        del sys.modules["nested_for_test"]


def test_a_broken_view_declared_here_is_loud_in_check_engine() -> None:
    log = ApplicationLog()
    engine = Engine(clock=ManualClock(), seed=1, recorder=log)
    log.attach(engine)
    install(engine, bells(BrokenPeals))
    for bell in ("big-ben", "tom", "big-ben"):
        engine.dispatch(Ring(bell))
    engine.pump()  # returns quietly: the handler's TypeError is retried later
    assert engine.subscriptions["peals"].position == 0

    midway = check_engine(engine, log, quiescent=False)
    assert midway["consumers healthy: peals"].status == "info"

    quiesce(engine)  # retries run out: every event is parked, the position reaches the head
    report = check_engine(engine, log)
    assert not report.ok
    result = report["consumers healthy: peals"]
    assert result.status == "fail"
    assert "3 events parked in the dead-letter store: TypeError" in result.summary
    assert "BrokenPeals._rang() takes 2 positional arguments but 3 were given" in result.summary
    evidence = result.violations[0].evidence
    assert [e["position"] for e in evidence] == [1, 2, 3]
    assert "consumers healthy: peals" in report.to_text()
    # the parked events are excused from convergence, as from no loss: the loud check is above
    assert report["convergence: peals"].status == "pass"


class GlobalStatePeals(Peals):
    """A handler that depends on state outside its read model: it refuses an event it has
    seen before in any instance, so the live run works and folding the log again raises."""

    name = "peals"
    seen: ClassVar[set[str]] = set()

    @on(Rang)
    def _rang(self, e: Rang, env: Envelope) -> None:
        if env.event_id in GlobalStatePeals.seen:
            raise RuntimeError(f"event {env.event_id} seen before")
        GlobalStatePeals.seen.add(env.event_id)
        super()._rang(e, env)


def test_a_view_that_cannot_be_folded_again_is_reported_and_the_rest_still_runs() -> None:
    GlobalStatePeals.seen.clear()
    log = ApplicationLog()
    engine = Engine(clock=ManualClock(), seed=1, recorder=log)
    log.attach(engine)
    install(engine, bells(GlobalStatePeals))
    for bell in ("big-ben", "tom"):
        engine.dispatch(Ring(bell))
    quiesce(engine)
    report = check_engine(engine, log)
    assert report["consumers healthy: peals"].status == "pass"
    (folding,) = report["convergence: peals"].violations
    assert folding.message.startswith("peals: cannot be checked, folding the log through its")
    assert report["no loss: peals"].status == "pass"


def test_a_sound_view_declared_here_passes_check_engine() -> None:
    log = ApplicationLog()
    engine = Engine(clock=ManualClock(), seed=1, recorder=log)
    log.attach(engine)
    install(engine, bells())
    for bell in ("big-ben", "tom", "big-ben"):
        engine.dispatch(Ring(bell))
    quiesce(engine)
    report = check_engine(engine, log)
    assert report.ok, report.to_text()
    assert report["consumers healthy: peals"].status == "pass"


def test_load_domain_says_how_to_reach_a_module_of_ones_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_library_domain.py").write_text("domain = None\n")
    monkeypatch.chdir(tmp_path)  # the file is here; the current directory is not on the path
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    with pytest.raises(ConfigError, match=r"current directory.*PYTHONPATH=\."):
        load_domain("my_library_domain:domain")
    with pytest.raises(ConfigError, match="a module name, not a file path"):
        load_domain(str(tmp_path / "my_library_domain.py"))
