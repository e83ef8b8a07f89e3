"""Bad arguments to the checks are refused with an error naming them.

An engine, a log or a history of the wrong kind raises :class:`ConfigError` saying which
argument and what is allowed (a malformed record of a history: :class:`HistoryError`, a
ConfigError, citing the record and its field as a history file's reader does): never an
AttributeError or TypeError from inside a check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cqrs_lab.checks import ApplicationLog, Operation, check_engine, check_history, quiesce
from cqrs_lab.core import Engine, ManualClock
from cqrs_lab.domains import bank
from cqrs_lab.errors import HistoryError
from tests.core.test_bad_arguments import refused

GOOD = Operation("s", "write", "a", 0.0, 1.0, "ok", 5, 1)
RECORD = {"session": "s", "op": "read", "key": "a", "invoke": 2.0, "complete": 3.0,
          "outcome": "ok", "position": 1}  # fmt: skip


def engine_with_log() -> tuple[Engine, ApplicationLog]:
    log = ApplicationLog()
    engine = Engine(clock=ManualClock(), seed=1, recorder=log)
    log.attach(engine)
    bank.install(engine)
    engine.dispatch(bank.OpenAccount("a1", "ann", 5))
    return engine, log


# -- 1. quiesce and check_engine ------------------------------------------------------------------
@pytest.mark.parametrize("engine", [None, "engine", Engine])
def test_quiesce_refuses_what_is_not_an_engine(engine: Any) -> None:
    refused(lambda: quiesce(engine), "quiesce(engine=", "Engine")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_rounds": "x"}, "quiesce(max_rounds='x')"),
        ({"max_rounds": 0}, "quiesce(max_rounds=0)"),
        ({"max_rounds": -1}, "quiesce(max_rounds=-1)"),
        ({"max_rounds": 2.5}, "quiesce(max_rounds=2.5)"),
        ({"stop_faults": "yes"}, "quiesce(stop_faults='yes')"),
    ],
)
def test_quiesce_refuses_a_bad_option(options: dict[str, Any], named: str) -> None:
    engine, _ = engine_with_log()
    refused(lambda: quiesce(engine, **options), named, "pass")
    assert engine.positions()["balances"] == 0  # refused before it ran


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda e, log: check_engine(e, None), "check_engine(log=None)"),
        (lambda e, log: check_engine(e, "log"), "check_engine(log='log')"),
        (lambda e, log: check_engine(None, log), "check_engine(engine=None)"),
        (lambda e, log: check_engine(log, e), "check_engine(engine=<"),
        (lambda e, log: check_engine(e, log, ordered="yes"), "check_engine(ordered='yes')"),
        (lambda e, log: check_engine(e, log, quiescent=None), "check_engine(quiescent=None)"),
    ],
)
def test_check_engine_refuses_a_bad_argument(
    call: Callable[[Engine, ApplicationLog], object], named: str
) -> None:
    engine, log = engine_with_log()
    refused(lambda: call(engine, log), named, "pass")


def test_the_checks_keep_taking_numpy_counts_and_flags() -> None:
    np = pytest.importorskip("numpy")
    engine, log = engine_with_log()
    quiesce(engine, np.int64(5), stop_faults=np.bool_(True))
    assert check_engine(engine, log, ordered=np.bool_(True), quiescent=np.bool_(True)).ok


# -- 2. check_history -----------------------------------------------------------------------------
@pytest.mark.parametrize("history", [None, 5, GOOD, RECORD])
def test_check_history_refuses_what_is_not_a_list_of_records(history: Any) -> None:
    refused(lambda: check_history(history), "check_history(history=", "Operation")


@pytest.mark.parametrize(
    ("history", "named"),
    [
        ([{}], ("operation 1", "missing field 'session'")),
        ([GOOD, {k: v for k, v in RECORD.items() if k != "key"}], ("operation 2", "'key'")),
        ([GOOD, {**RECORD, "op": "scan"}], ("operation 2", "field 'op'")),
        ([GOOD, 5], ("operation 2", "int")),
        ([GOOD, "read"], ("operation 2", "str")),
        ([GOOD, RECORD], ("operation 2", "dict", "Operation(**record)")),
    ],
)
def test_check_history_refuses_a_record_that_is_not_an_operation(
    history: list[Any], named: tuple[str, ...]
) -> None:
    """A dict is checked field by field, as a history file's line is."""
    refused(lambda: check_history(history), *named, error=HistoryError)


def test_check_history_keeps_taking_any_iterable_of_operations() -> None:
    read = Operation(**RECORD)  # type: ignore[arg-type]
    assert check_history(iter([GOOD, read])).ok
    assert check_history((GOOD, read)).ok
