"""Load profiles, open-model pacing, the Zipf skew, the command mix and fault parsing."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from cqrs_lab.domains.bank import domain as bank
from cqrs_lab.errors import ConfigError
from cqrs_lab.load import CommandMix, OpenPacer, Profile, ZipfKeys, parse_fault, parse_mix
from cqrs_lab.load.faults import check_fault_names
from cqrs_lab.load.shapes import SharedPacer


def test_step_spike_soak_knee_levels() -> None:
    step = Profile("step", peak=90.0, duration=30.0, steps=3)
    assert [step.level(t) for t in (0, 9.9, 10, 29.9, 30)] == [30.0, 30.0, 60.0, 90.0, 0.0]
    spike = Profile("spike", peak=100.0, duration=100.0, base=0.1, spike_fraction=0.2)
    assert [spike.level(t) for t in (39.9, 40.0, 59.9, 60.0)] == [10.0, 100.0, 100.0, 10.0]
    soak = Profile("soak", peak=50.0, duration=100.0)
    assert soak.level(5.0) == pytest.approx(25.0) and soak.level(50.0) == 50.0
    knee = Profile("knee", peak=100.0, duration=10.0, steps=3)  # geometric: 20, 44.7, 100
    assert knee.level(0.0) == pytest.approx(20.0) and knee.level(5.0) == pytest.approx(44.72, 1e-3)
    assert step.users(0.0) == 30 and step.users(31.0) == 0


@pytest.mark.parametrize(
    "kwargs", [{"name": "square"}, {"peak": 0.0}, {"duration": -1.0}, {"steps": 0}]
)
def test_bad_profiles_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Profile(**kwargs)  # type: ignore[arg-type]


def test_open_pacing_keeps_the_rate_whatever_the_server_does() -> None:
    # one user with the whole rate of 50/s for 200 s: the number of sends is Poisson with
    # mean 10 000, standard deviation 100; 4 standard deviations is a safe band
    pacer = OpenPacer(Profile("constant", peak=50.0, duration=200.0), 1.0, random.Random(7))
    sends, now = [], 0.0
    while (t := pacer.next_send(now)) != math.inf:
        sends.append(t)
        now = t + 5.0  # a response 5 s late does not delay the schedule (no coordinated omission)
    assert abs(len(sends) - 10_000) < 400
    assert sends == sorted(sends)
    again = OpenPacer(Profile("constant", peak=50.0, duration=200.0), 1.0, random.Random(7))
    assert [again.next_send(0.0) for _ in range(5)] == sends[:5]


def test_open_pacing_follows_a_step_profile() -> None:
    profile = Profile("step", peak=100.0, duration=100.0, steps=2)  # 50/s, then 100/s
    pacer = OpenPacer(profile, 0.5, random.Random(3))  # half the rate: 25/s then 50/s
    sends = []
    while (t := pacer.next_send(0.0)) != math.inf:
        sends.append(t)
    first = sum(t < 50 for t in sends)
    second = len(sends) - first
    # Poisson counts with means 1250 and 2500 (sd 35 and 50)
    assert abs(first - 1250) < 175 and abs(second - 2500) < 250


def test_zipf_keys_follow_the_zipf_law() -> None:
    # s = 1 over 3 keys: weights 1, 1/2, 1/3, so probabilities 6/11, 3/11, 2/11
    keys = ZipfKeys(3, 1.0, random.Random(11))
    n = 30_000
    counts = Counter(keys.index() for _ in range(n))
    for i, p in ((0, 6 / 11), (1, 3 / 11), (2, 2 / 11)):
        sd = math.sqrt(n * p * (1 - p))
        assert abs(counts[i] - n * p) < 4 * sd
    uniform = ZipfKeys(4, 0.0, random.Random(2))
    assert set(Counter(uniform.index() for _ in range(400))) == {0, 1, 2, 3}


def test_command_mix_and_its_parser_over_the_domains_kinds() -> None:
    kinds = ("deposit", "withdraw", "transfer")
    mix = CommandMix(parse_mix("deposit=3,withdraw=1", kinds), random.Random(5))
    n = 20_000
    deposits = sum(mix() == "deposit" for _ in range(n))
    assert abs(deposits - 0.75 * n) < 4 * math.sqrt(n * 0.75 * 0.25)
    for bad, where in (
        ("steal=2", "unknown command kind 'steal'; this domain's kinds: deposit, withdraw"),
        ("deposit=x", "deposit=x"),
        ("deposit=0", "positive"),
    ):
        with pytest.raises(ConfigError, match=where):
            parse_mix(bad, kinds)
    assert parse_mix("reserve=1", ("reserve", "ship")) == {"reserve": 1.0}


def test_fault_steps_must_name_the_domains_views() -> None:
    check_fault_names([parse_fault("1:crash=balances+statements,restart=transfer-saga")], bank)
    with pytest.raises(ConfigError, match="no view 'balanc'; its views: balances, statements"):
        check_fault_names([parse_fault("1:crash=balanc")], bank)
    with pytest.raises(ConfigError, match="restart=stock"):
        check_fault_names([parse_fault("2:clear"), parse_fault("3:restart=stock")], bank)


def test_fault_steps() -> None:
    step = parse_fault("7.5:crash=balances+statements,restart=transfer-saga")
    assert step.at == 7.5
    assert step.body == {"crash": ["balances", "statements"], "restart": ["transfer-saga"]}
    assert parse_fault("3:clear").body == {"plan": None}
    assert parse_fault("1:crash-rate=0.1").body == {"plan": {"crash": 0.1}}
    for bad, where in (
        ("crash=balances", "seconds"),
        ("-1:clear", "seconds"),
        ("2:drop=2", "probability"),
        ("2:explode", "unknown action"),
        ("2:", "no action"),
        ("2:crash=", "names"),
    ):
        with pytest.raises(ConfigError, match=where):
            parse_fault(bad)


def test_users_sharing_a_schedule_keep_to_it_while_one_is_held() -> None:
    """Four users pool their schedules (a quarter of 40/s each): the sends are the four
    Poisson streams merged, 40/s, whoever takes them. With one user held by slow answers (5 s
    each) for 50 s, the three others take every send on time; on its own schedule the held
    user's sends would have been up to 5 s late."""
    profile = Profile("constant", peak=40.0, duration=100.0)
    shared = SharedPacer()
    for k in range(4):
        shared.join(OpenPacer(profile, 0.25, random.Random(k)), 0.0)
    free_at = [0.0, 0.0, 0.0, 0.0]  # when each user is free again
    late: list[float] = []
    while True:
        user = min(range(4), key=free_at.__getitem__)  # the first user free takes the next send
        t = shared.next_send()
        if t == math.inf:
            break
        sent = max(t, free_at[user])
        late.append(sent - t)
        free_at[user] = sent + (5.0 if user == 0 and 10 < sent < 60 else 0.005)
    assert abs(len(late) - 4000) < 4 * math.sqrt(4000)  # Poisson(4000): within 4 sd
    assert max(late) < 0.05  # never all four held at once
    own = [OpenPacer(profile, 0.25, random.Random(k)) for k in range(4)]
    merged = sorted(t for p in own for t in iter(lambda p=p: p.next_send(0.0), math.inf))
    again = SharedPacer()
    for k in range(4):
        again.join(OpenPacer(profile, 0.25, random.Random(k)), 0.0)
    assert list(iter(again.next_send, math.inf)) == merged  # the same sends
