"""A store that fails inside a handler (its database unreachable while a saga sends its
commands, say) is not the handler failing: the event is neither retried as a poison event
nor parked as a dead letter, where a transfer's next step would have been lost. It stays in
flight, the handler's writes are rolled back, and the failure reaches the caller."""

from __future__ import annotations

import pytest

from cqrs_lab.core import RetryPolicy
from cqrs_lab.errors import StoreBroken, StoreFailure, StoreUnavailable
from tests.core.test_retries_rebuilds_partitions import flaky_engine


@pytest.mark.parametrize("failure", [StoreUnavailable("database down"), StoreBroken("disk")])
def test_a_store_failure_in_a_handler_is_no_handler_error(failure: StoreFailure) -> None:
    retry = RetryPolicy(max_attempts=2, base=1.0, jitter="none")
    engine, flaky = flaky_engine({}, retry)
    sub = engine.subscriptions["flaky"]

    def failing(e, env):  # type: ignore[no-untyped-def]
        flaky.seen.put(env.position, e.n)  # written, then rolled back
        if e.n == 2:
            raise failure
        flaky._ticked(e, env)

    saved = dict(flaky.handlers)
    flaky.handlers = {k: failing for k in saved}
    for _ in range(3):  # however often it is tried, it is never the handler's failure
        with pytest.raises(type(failure)):
            engine.pump()
        assert sub.position == 2 and sub.retry_at is None and sub.attempts == 0
        assert len(engine.dead_letters) == 0 and sub.dead_lettered == 0
        assert 3 not in flaky.seen  # the failed event's write was rolled back
    flaky.handlers = saved
    engine.run_until_idle()  # the store is back: each event applied once, in order
    assert sub.position == 6 and sorted(flaky.seen) == [1, 2, 3, 4, 5, 6]
    assert len(engine.dead_letters) == 0
