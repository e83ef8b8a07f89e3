"""The session-guarantee checker on hand-built histories whose answer is reasoned out."""

from __future__ import annotations

import math

import pytest

from cqrs_lab.checks import Operation, check_history
from cqrs_lab.errors import ConfigError


def w(
    session: str, key: str | None, t0: float, t1: float, pos: int | None, outcome: str = "ok"
) -> Operation:
    return Operation(session, "write", key, t0, t1, outcome, 1, pos)  # type: ignore[arg-type]


def r(
    session: str, key: str | None, t0: float, t1: float, pos: int | None, outcome: str = "ok"
) -> Operation:
    return Operation(session, "read", key, t0, t1, outcome, 0, pos)  # type: ignore[arg-type]


def statuses(history: list[Operation]) -> dict[str, str]:
    return {res.name: res.status for res in check_history(history).results}


ALL_PASS = {
    "read-your-writes": "pass",
    "monotonic reads": "pass",
    "monotonic writes": "pass",
    "writes-follow-reads": "pass",
    "bounded staleness": "pass",
}


def test_a_correct_session_passes_everything() -> None:
    # write stored at 3, then reads at 3 and 4, then a write stored at 5: every order holds
    h = [w("s", "a", 0, 1, 3), r("s", "a", 2, 3, 3), r("s", "a", 4, 5, 4), w("s", "a", 6, 7, 5)]
    assert statuses(h) == ALL_PASS


def test_read_your_writes_violation_names_both_operations() -> None:
    # the session wrote at position 7, then read from a model at 6: it cannot see its write
    h = [w("s", "a", 0, 1, 7), r("s", "a", 2, 3, 6)]
    res = check_history(h)["read-your-writes"]
    assert res.status == "fail"
    (v,) = res.violations
    # built in memory: cited by their number in the history, not by a file line
    assert [e["operation"] for e in v.evidence] == [1, 2]
    assert "read at operation 2" in v.message and "write at operation 1" in v.message


def test_read_your_writes_is_per_session_and_per_key() -> None:
    other_session = [w("s1", "a", 0, 1, 7), r("s2", "a", 2, 3, 6)]
    other_key = [w("s", "a", 0, 1, 7), r("s", "b", 2, 3, 6)]
    whole_model = [w("s", "a", 0, 1, 7), r("s", None, 2, 3, 6)]  # a None key matches any key
    assert check_history(other_session)["read-your-writes"].status == "pass"
    assert check_history(other_key)["read-your-writes"].status == "pass"
    assert check_history(whole_model)["read-your-writes"].status == "fail"


def test_concurrent_operations_do_not_oblige_each_other() -> None:
    # the read was invoked (0.5) before the write completed (1): no obligation to see it
    h = [w("s", "a", 0, 1, 7), r("s", "a", 0.5, 3, 6)]
    assert check_history(h)["read-your-writes"].status == "pass"


def test_unknown_write_may_not_have_happened() -> None:
    # the write timed out; a read missing it is no violation, whether or not it happened
    unknown = [w("s", "a", 0, 1, None, "unknown"), r("s", "a", 2, 3, 0)]
    failed = [w("s", "a", 0, 1, None, "failed"), r("s", "a", 2, 3, 0)]
    rep = check_history(unknown)
    assert rep["read-your-writes"].status == "pass"
    assert "1 unknown" in rep.title
    assert check_history(failed)["read-your-writes"].status == "pass"


def test_unknown_write_with_a_token_still_obliges_nothing() -> None:
    # even if a position was logged, the client never had the token to wait on
    h = [w("s", "a", 0, 1, 9, "unknown"), r("s", "a", 2, 3, 1)]
    assert check_history(h)["read-your-writes"].status == "pass"


def test_unknown_read_testifies_to_nothing() -> None:
    # the second read's answer never arrived, so its stale-looking position proves nothing
    h = [w("s", "a", 0, 1, 5), r("s", "a", 2, 3, 5), r("s", "a", 4, 5, 1, "unknown")]
    assert statuses(h) == ALL_PASS


def test_monotonic_reads() -> None:
    backwards = [r("s", "a", 0, 1, 8), r("s", "a", 2, 3, 5)]
    forwards = [r("s", "a", 0, 1, 5), r("s", "a", 2, 3, 8)]
    res = check_history(backwards)["monotonic reads"]
    assert res.status == "fail" and len(res.violations) == 1
    assert [e["position"] for e in res.violations[0].evidence] == [8, 5]
    assert check_history(forwards)["monotonic reads"].status == "pass"
    # different sessions may see different ages
    assert check_history([r("x", "a", 0, 1, 8), r("y", "a", 2, 3, 5)])["monotonic reads"].passed


def test_monotonic_writes() -> None:
    # the session's second write was stored before its first: reordered
    reordered = [w("s", "a", 0, 1, 9), w("s", "b", 2, 3, 4)]
    res = check_history(reordered)["monotonic writes"]
    assert res.status == "fail"
    assert check_history([w("s", "a", 0, 1, 4), w("s", "b", 2, 3, 9)])["monotonic writes"].passed


def test_an_idempotent_retry_is_not_a_monotonic_writes_violation() -> None:
    # the retry was answered from the idempotency record: the same position as the original
    retried = [w("s", "a", 0, 1, 7), w("s", "a", 2, 3, 7)]
    res = check_history(retried)["monotonic writes"]
    assert res.status == "pass" and res.measures["judged"] == 1
    # a retry of the first write after a second one: it stored nothing new, so no reorder
    late_retry = [w("s", "a", 0, 1, 7), w("s", "b", 2, 3, 9), w("s", "a", 4, 5, 7)]
    assert check_history(late_retry)["monotonic writes"].status == "pass"


def test_a_lower_position_than_an_earlier_write_still_violates_monotonic_writes() -> None:
    h = [w("s", "a", 0, 1, 7), w("s", "a", 2, 3, 7), w("s", "a", 4, 5, 6)]
    res = check_history(h)["monotonic writes"]
    assert res.status == "fail" and len(res.violations) == 1
    assert [e["position"] for e in res.violations[0].evidence] == [7, 6]
    # the same position for another key is no retry (and no reorder either)
    assert check_history([w("s", "a", 0, 1, 7), w("s", "b", 2, 3, 7)])["monotonic writes"].passed


def test_writes_follow_reads() -> None:
    # the session read a model at 10 and then wrote something stored at 6, before what it read
    bad = [r("s", "a", 0, 1, 10), w("s", "b", 2, 3, 6)]
    good = [r("s", "a", 0, 1, 10), w("s", "b", 2, 3, 11)]
    assert check_history(bad)["writes-follow-reads"].status == "fail"
    assert check_history(good)["writes-follow-reads"].status == "pass"


def test_a_retried_write_after_a_read_of_it_follows_reads() -> None:
    # wrote at 7, read 7 (saw it), retried the write: answered with 7, nothing new stored
    h = [w("s", "a", 0, 1, 7), r("s", "a", 2, 3, 7), w("s", "a", 4, 5, 7)]
    assert statuses(h) == ALL_PASS
    # a new write stored at the position the session had read is still a violation
    new = [w("s", "a", 0, 1, 7), r("s", "a", 2, 3, 8), w("s", "b", 4, 5, 8)]
    assert check_history(new)["writes-follow-reads"].status == "fail"


def test_staleness_bound_tolerates_float_noise_but_not_a_real_excess() -> None:
    # the write completed at t=1.0; the read was invoked 0.2 s later, give or take float noise
    def stale_by(seconds: float) -> list[Operation]:
        return [w("x", "a", 0, 1.0, 5), r("y", "a", 1.0 + seconds, 9, 4)]

    noisy = check_history(stale_by(0.2000001), staleness_bound=0.2)["bounded staleness"]
    assert noisy.status == "pass", noisy.summary
    assert noisy.measures["max_staleness_seconds"] > 0.2  # measured as is, judged leniently
    epoch = [w("x", "a", 1.7e9, 1.7e9 + 1, 5), r("y", "a", 1.7e9 + 1.2, 1.7e9 + 2, 4)]
    assert check_history(epoch, staleness_bound=0.2)["bounded staleness"].passed
    over = check_history(stale_by(0.201), staleness_bound=0.2)["bounded staleness"]
    assert over.status == "fail"
    assert "0.201 s > 0.2 s" in over.violations[0].message


def test_bounded_staleness_in_positions_and_time() -> None:
    # writes to "a" complete at t=1 (position 4) and t=2 (position 6); a read at t=5 answers
    # from position 3: it misses both, 6 - 3 = 3 positions, and the oldest missed write
    # completed 5 - 1 = 4 s before the read was invoked.
    h = [w("x", "a", 0, 1, 4), w("y", "a", 1.5, 2, 6), r("z", "a", 5, 5.5, 3)]
    unbounded = check_history(h)["bounded staleness"]
    assert unbounded.status == "pass"
    assert unbounded.measures["max_staleness_positions"] == 3
    assert unbounded.measures["max_staleness_seconds"] == 4.0
    assert check_history(h, staleness_bound=4.0)["bounded staleness"].status == "pass"
    over = check_history(h, staleness_bound=3.5)["bounded staleness"]
    assert over.status == "fail"
    assert sorted(e["operation"] for e in over.violations[0].evidence) == [1, 2, 3]
    assert check_history(h, staleness_positions=2)["bounded staleness"].status == "fail"
    assert check_history(h, staleness_positions=3)["bounded staleness"].status == "pass"


def test_staleness_ignores_other_keys_and_unknown_writes() -> None:
    h = [w("x", "b", 0, 1, 9), w("x", "a", 0, 1, None, "unknown"), r("z", "a", 5, 6, 1)]
    res = check_history(h, staleness_bound=0.0)["bounded staleness"]
    assert res.status == "pass" and res.measures["stale_reads"] == 0


def test_staleness_prefers_the_oldest_missed_write_for_time() -> None:
    # write at 6 completed at t=3 and write at 4 completed at t=1: read at 2 misses both;
    # time staleness counts from the earliest completion (t=1) -> 9 - 1 = 8 s
    h = [w("x", "a", 2.5, 3, 6), w("y", "a", 0, 1, 4), r("z", "a", 9, 9, 2)]
    res = check_history(h)["bounded staleness"]
    assert res.measures["max_staleness_seconds"] == 8.0
    assert res.measures["max_staleness_positions"] == 4


def test_bad_bounds_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="staleness_bound"):
        check_history([], staleness_bound=-1)
    with pytest.raises(ConfigError, match="staleness_positions"):
        check_history([], staleness_positions=-1)
    # a NaN bound would pass every read ("within nan"); True and 1.5 are not positions
    for bad in (math.nan, True, 1.5, "3"):
        with pytest.raises(ConfigError, match="staleness_positions"):
            check_history([], staleness_positions=bad)  # type: ignore[arg-type]
    for bad in (math.nan, math.inf, True, "1"):
        with pytest.raises(ConfigError, match="staleness_bound"):
            check_history([], staleness_bound=bad)  # type: ignore[arg-type]


def test_a_history_with_nothing_known_to_have_happened_fails() -> None:
    """Nothing recorded, or only failures and unknowns: no guarantee can be seen to hold."""
    failed = w("s", "a", 0, 1, None, outcome="failed")
    for history in ([], [failed]):
        report = check_history(history)
        assert not report.ok and report["history"].status == "fail"
    assert "history" not in {x.name for x in check_history([w("s", "a", 0, 1, 7)]).results}


def test_report_renders_violations_in_text_and_html() -> None:
    rep = check_history([w("s", "a", 0, 1, 7), r("s", "a", 2, 3, 6)])
    assert not rep.ok
    text = rep.to_text()
    assert "[fail] read-your-writes" in text and "position=7" in text
    page = rep._repr_html_()
    assert "#fde2e1" in page and "read-your-writes" in page


def test_a_retry_is_a_replay_only_with_the_same_value() -> None:
    """An idempotent retry repeats the write (same key, position and value): not judged
    again. Another value answered with the earlier write's position is judged: here it
    claims to be stored before what its session had read."""
    first = Operation("s", "write", "a", 0.0, 0.1, "ok", {"amount": 5}, 5)
    read = Operation("s", "read", "a", 0.2, 0.3, "ok", 7, 8)
    retry = Operation("s", "write", "a", 0.4, 0.5, "ok", {"amount": 5}, 5)
    other = Operation("s", "write", "a", 0.4, 0.5, "ok", {"amount": 700}, 5)
    assert check_history([first, read, retry]).ok
    report = check_history([first, read, other])
    assert report["writes-follow-reads"].status == "fail" and not report.ok


def test_the_json_report_is_strict_json_even_for_a_nan_value() -> None:
    import json

    w1 = Operation("s", "write", "a", 0.0, 0.1, "ok", math.nan, 5)
    r1 = Operation("s", "read", "a", 0.2, 0.3, "ok", math.nan, 4)  # a violation citing NaN
    text = check_history([w1, r1]).to_json()
    assert "NaN" not in text
    parsed = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard {c}"))
    assert parsed["ok"] is False
