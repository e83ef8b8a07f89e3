"""Consistency checks: invariants of an engine run, and session guarantees of a history.

>>> from cqrs_lab.core import Engine, ManualClock
>>> from cqrs_lab.domains import bank
>>> log = ApplicationLog()
>>> engine = Engine(clock=ManualClock(), seed=1, recorder=log)
>>> log.attach(engine)
>>> _ = bank.install(engine, delivery="at-least-once")
>>> _ = engine.dispatch(bank.OpenAccount("a1", "ann", 10))
>>> quiesce(engine)
>>> check_engine(engine, log).ok
True
"""

from cqrs_lab.checks.application_log import ApplicationLog, Record
from cqrs_lab.checks.concurrency import Write, check_no_lost_update, interleave
from cqrs_lab.checks.consumers import check_consumers
from cqrs_lab.checks.history import (
    HistoryError,
    Operation,
    Origin,
    history_files,
    load_frame,
    read_histories,
    read_jsonl,
    to_frame,
    write_jsonl,
)
from cqrs_lab.checks.invariants import (
    PROMISES,
    Promises,
    check_application_order,
    check_convergence,
    check_domain_invariants,
    check_engine,
    check_log_streams,
    check_no_double_effect,
    check_no_loss,
    check_record_explains_model,
    fold,
    quiesce,
    read_models,
)
from cqrs_lab.checks.positions import check_positions
from cqrs_lab.checks.report import CheckReport, CheckResult, Violation
from cqrs_lab.checks.session import GUARANTEES, check_history

__all__ = [
    "GUARANTEES",
    "PROMISES",
    "ApplicationLog",
    "CheckReport",
    "CheckResult",
    "HistoryError",
    "Operation",
    "Origin",
    "Promises",
    "Record",
    "Violation",
    "Write",
    "check_application_order",
    "check_consumers",
    "check_convergence",
    "check_domain_invariants",
    "check_engine",
    "check_history",
    "check_log_streams",
    "check_no_double_effect",
    "check_no_loss",
    "check_no_lost_update",
    "check_positions",
    "check_record_explains_model",
    "fold",
    "history_files",
    "interleave",
    "load_frame",
    "quiesce",
    "read_histories",
    "read_jsonl",
    "read_models",
    "to_frame",
    "write_jsonl",
]
