"""The measured knee: the rule on synthetic step tables (a clean knee, a generator that runs
out first, noise, a ramp that never saturates), the generator-bound judgement of a step, the
staircase profile, and one bounded real ramp against a deliberately slow server."""

from __future__ import annotations

import argparse
import itertools
import math
import random
from pathlib import Path

import pandas as pd
import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.cli import register
from cqrs_lab.load.generator import BUSY_SHARE
from cqrs_lab.load.knee import _step_bound, find_knee, measure_knee
from cqrs_lab.load.knee_display import format_knee, plot_knee
from cqrs_lab.load.options import LoadTestOptions
from cqrs_lab.load.shapes import Profile, knee_steps
from tests.load.slow_bank import DELAY

REPO = Path(__file__).resolve().parents[2]


def table(
    offered: list[float],
    finished: list[float],
    bound: list[str] | None = None,
    seconds: int = 4,
    sd: float = 5.0,
) -> pd.DataFrame:
    """A step table with the columns :func:`find_knee` and the display read."""
    n = len(offered)
    why = bound or [""] * n
    return pd.DataFrame(
        {
            "offered_per_s": offered, "sent_per_s": offered, "finished_per_s": finished,
            "throughput_per_s": finished, "finished_sd_per_s": [sd] * n,
            "seconds": [seconds] * n, "latency_p50_s": [0.002] * n,
            "latency_p99_s": [0.01] * n, "server_cpu": [0.5] * n, "generator_cpu": [0.3] * n,
            "lateness_p95_s": [0.001] * n, "shed": [0] * n, "errors": [0] * n,
            "generator_bound": [bool(w) for w in why], "generator_bound_why": why,
        }
    )  # fmt: skip


OFFERED = [100.0 * 1.5**i for i in range(7)]  # 100 ... 1139


def test_a_clean_knee_is_the_plateau_with_an_interval_around_it() -> None:
    finished = [100.0, 150.0, 225.0, 337.0, 420.0, 418.0, 405.0]  # follows up to 338
    k = find_knee(table(OFFERED, finished))
    assert k.reached and not k.generator_bound
    assert k.ci_low < k.capacity_per_s < k.ci_high
    # the plateau: the knee's step (506 offered) and the next (759, 1.5 times it); 1139 is
    # deeper overload, reported beside the capacity
    assert k.capacity_per_s == pytest.approx((420 + 418) / 2)
    assert k.ci_low > 400 and k.ci_high < 440  # 8 one-second samples, sd about 5
    assert list(k.steps["role"]) == ["follows"] * 4 + ["saturated"] * 2 + ["overload"]
    assert "between 338 and 506 offered" in k.why
    assert "(up to 1139), the server finished 405 commands/s: overload" in k.why
    assert format_knee(k).splitlines()[-1].startswith("capacity: 419 commands/s (95% interval")


def test_the_generator_running_out_first_gives_a_lower_bound_not_a_knee() -> None:
    finished = [100.0, 150.0, 225.0, 300.0, 310.0, 312.0, 312.0]
    why = ["", "", "", "generator CPU 0.95 cores per Locust process (> 0.9)", "x", "x", "x"]
    k = find_knee(table(OFFERED, finished, bound=why))
    assert k.generator_bound and not k.reached
    # the most the server finished, whatever held the generator back, is a lower bound
    assert math.isnan(k.capacity_per_s) and k.ci_low == 312.0 and k.ci_high == math.inf
    assert k.why.startswith("generator-bound: capacity above 312 commands/s (the generator")
    assert "bound from 338 offered: generator CPU 0.95" in k.why
    assert list(k.steps["role"]) == ["follows"] * 3 + ["generator-bound"] * 4
    assert format_knee(k).splitlines()[-1].startswith("capacity not measured: generator-bound")


def test_throughput_falling_past_the_knee_makes_the_last_step_that_followed_the_capacity() -> None:
    finished = [100.0, 150.0, 225.0, 337.0, 300.0, 250.0, 240.0]  # overload: it collapses
    k = find_knee(table(OFFERED, finished))
    assert k.reached and k.capacity_per_s == 337.0
    assert k.ci_low == pytest.approx(337.0 - 3.182 * 5.0 / 2, abs=0.01)
    assert "throughput falls under overload" in k.why
    assert list(k.steps["role"]) == ["follows"] * 4 + ["saturated"] * 2 + ["overload"]


def test_throughput_still_rising_past_a_stall_is_no_knee_yet() -> None:
    # the server stalled at 225/s (another process took its CPU), then kept up more and more
    finished = [100.0, 150.0, 160.0, 250.0, 380.0]
    k = find_knee(table(OFFERED[:5], finished))
    assert not k.reached and not k.generator_bound and k.ci_low == 380.0
    assert k.why.startswith("no knee yet: finished commands/s still rising")


def test_a_rise_on_the_plateau_that_the_steps_past_it_do_not_keep_is_noise() -> None:
    # a real ramp (0.4 cores): the step at 1495/s finished 668, the one at 2236/s 1100,
    # and every step offered more finished 349 to 907; judged "still rising" from the
    # plateau alone, the ramp went on to 55,902/s and measured no knee
    offered = [200.0, 299.1, 447.2, 668.7, 1000.0, 1495.3, 2236.1, 3343.7, 5000.0, 7476.7]
    finished = [203.8, 280.8, 421.8, 670.5, 983.5, 668.3, 1100.5, 801.3, 907.0, 747.3]
    k = find_knee(table(offered, finished, sd=60.0))
    assert k.reached and k.capacity_per_s == pytest.approx((668.3 + 1100.5) / 2)
    assert list(k.steps["role"])[5:] == ["saturated"] * 2 + ["overload"] * 3
    # before the steps past the plateau are measured, the same rise is no knee yet
    early = find_knee(table(offered[:7], finished[:7], sd=60.0))
    assert not early.reached and early.why.startswith("no knee yet")
    # and a rise that the deeper steps keep is no knee either
    kept = find_knee(table(offered, [*finished[:7], 1300.0, 1500.0, 1600.0], sd=60.0))
    assert not kept.reached and kept.why.startswith("no knee yet")


def test_a_generator_bound_step_after_the_knee_is_left_out_of_the_plateau() -> None:
    finished = [100.0, 150.0, 225.0, 300.0, 301.0, 50.0, 299.0]
    why = ["", "", "", "", "", "sends late: lateness p95 40.0 ms > 25 ms", ""]
    k = find_knee(table(OFFERED, finished, bound=why))
    assert k.reached and not k.generator_bound
    # the 50/s step is not averaged in, nor the step offered over 1.5 times the knee's
    assert k.capacity_per_s == pytest.approx((300.0 + 301.0) / 2)
    assert list(k.steps["role"])[3:] == ["saturated", "saturated", "generator-bound", "overload"]


def test_a_would_be_knee_that_a_later_step_outdid_is_a_lower_bound() -> None:
    # the generator sent short at 506/s, then ran out of CPU at 759/s where the server
    # still finished 700/s: the server's capacity is above 700, not 400
    finished = [100.0, 150.0, 225.0, 337.0, 400.0, 700.0, 600.0]
    why = ["", "", "", "", "", "generator CPU 0.99 cores per Locust process (> 0.9)", ""]
    k = find_knee(table(OFFERED, finished, bound=why))
    assert not k.reached and k.generator_bound and k.ci_low == 700.0
    assert k.why.startswith("generator-bound: capacity above 700 commands/s")
    assert "not a knee" in k.why and "saturated" not in set(k.steps["role"])


def test_one_dip_is_noise_and_a_noisy_ramp_that_follows_has_no_knee() -> None:
    rng = random.Random(3)
    noisy = [o * rng.uniform(0.97, 1.02) for o in OFFERED]
    noisy[2] = OFFERED[2] * 0.85  # a dip (a collector pause), then it follows again
    k = find_knee(table(OFFERED, noisy, seconds=10))
    assert not k.reached and not k.generator_bound
    assert k.why.startswith("no knee: every step followed; capacity above")
    assert k.ci_low == pytest.approx(max(noisy))
    plateau = [*noisy[:5], 700.0, 705.0]  # and the same ramp saturating at the end
    k = find_knee(table(OFFERED, plateau, seconds=10))
    assert k.reached and k.capacity_per_s == pytest.approx(702.5)
    assert list(k.steps["role"])[2] == "dip"  # not taken for the knee


def test_a_short_step_allows_poisson_noise_before_calling_a_shortfall() -> None:
    # 90 of 100/s over 3 s: 30 short of 300, under 3 sd (52): still follows
    assert not find_knee(table([100.0], [90.0], seconds=3)).reached
    assert find_knee(table([100.0], [90.0], seconds=60)).reached


def test_late_sends_are_the_server_s_doing_only_while_users_wait_for_answers() -> None:
    row = {"lateness_p95_s": 0.2, "sent_per_s": 100.0, "offered_per_s": 100.0,
           "finished_per_s": 100.0, "seconds": 4, "generator_cpu": 0.2, "latency_p50_s": 0.01,
           "busy_share": BUSY_SHARE}  # fmt: skip
    assert _step_bound(row, 1, 4.0) == ""
    idle = {**row, "busy_share": 0.01}
    assert _step_bound(idle, 1, 4.0).startswith("sends late: lateness p95 200.0 ms")
    assert _step_bound({**idle, "latency_p50_s": 0.25}, 1, 4.0) == ""  # answers this slow
    hot = {**row, "lateness_p95_s": 0.001, "generator_cpu": 0.95}
    assert _step_bound(hot, 1, 4.0).startswith("generator CPU 0.95")
    assert _step_bound({**hot, "lateness_p95_s": 0.2}, 1, 4.0).startswith("generator CPU")


def test_a_step_short_of_the_offered_load_that_the_server_kept_up_with_is_the_generator_s() -> None:
    # 920 of 1000/s sent (92%: the generator rule's 90% lets it pass), all 920 finished,
    # the users hardly waiting: not a knee
    row = {"lateness_p95_s": 0.01, "sent_per_s": 920.0, "offered_per_s": 1000.0,
           "finished_per_s": 918.0, "seconds": 4, "generator_cpu": 0.4,
           "busy_share": 0.02}  # fmt: skip
    assert _step_bound(row, 1, 4.0).startswith("sent 920.0 of the 1000.0 commands/s aimed at")
    assert _step_bound({**row, "busy_share": 0.5}, 1, 4.0) == ""  # users held back: server
    assert _step_bound({**row, "finished_per_s": 700.0}, 1, 4.0) == ""  # server fell behind
    assert _step_bound({**row, "finished_per_s": 990.0, "sent_per_s": 995.0}, 1, 4.0) == ""


def test_the_knee_profile_is_a_geometric_staircase() -> None:
    steps = knee_steps(Profile("knee", peak=1000.0, duration=10.0, steps=5, base=0.2))
    levels = [lvl for _, _, lvl in steps]
    assert levels[0] == pytest.approx(200.0) and levels[-1] == pytest.approx(1000.0)
    assert all(b / a == pytest.approx(5**0.25) for a, b in itertools.pairwise(levels))
    assert [(a, b) for a, b, _ in steps][:2] == [(0.0, 2.0), (2.0, 4.0)]
    with pytest.raises(ConfigError, match="base=0"):
        Profile("knee", base=0.0)


def test_measure_knee_refuses_bad_arguments_before_starting_anything(tmp_path: Path) -> None:
    opts = LoadTestOptions(rate=1.0)
    with pytest.raises(ConfigError, match="step_s"):
        measure_knee(opts, tmp_path, step_s=1.5)
    with pytest.raises(ConfigError, match="start_per_s"):
        measure_knee(opts, tmp_path, start_per_s=0.0)
    with pytest.raises(ConfigError, match="WriterUser"):
        measure_knee(LoadTestOptions(rate=1.0, classes=("ReaderUser",)), tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_plot_has_units_and_marks_the_bound_steps() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    why = ["", "", "", "generator CPU 0.95 cores per Locust process (> 0.9)", "", "", ""]
    top, bottom = plot_knee(find_knee(table(OFFERED, [*OFFERED[:3], 300.0, 301, 302, 300], why)))
    assert top.get_ylabel() == "commands/s" and bottom.get_ylabel() == "latency (ms)"
    assert bottom.get_xlabel() == "offered load (commands/s)"
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert "generator-bound (not used)" in labels
    plt.close(top.figure)


@pytest.mark.slow
def test_a_real_ramp_finds_the_knee_of_a_slow_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # every command blocks the server's loop 8 ms: at most 125 commands/s, whatever the
    # machine; a 5-step ramp 45 -> 228 commands/s of 2.5 s steps, about 30 s in all (from 50,
    # the third step offered 112.5/s, 90% of the capacity: with the sends on their Poisson
    # schedule that step sometimes fell behind, and the knee moved a step early)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the server and Locust import the domain
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["twin", str(tmp_path / "out"), "--measure-knee", "--knee-from", "45", "--knee-step",
         "2.5", "--domain", "tests.load.slow_bank:domain", "--classes", "WriterUser",
         "--knee-only"]
    )  # fmt: skip
    code = args.run(args)
    out = capsys.readouterr().out
    steps = pd.read_csv(tmp_path / "out" / "knee.csv")
    assert code == 0, out
    assert "capacity: " in out and "(95% interval" in out
    assert (tmp_path / "out" / "knee.png").stat().st_size > 0
    assert set(steps["segment"]) == {1} and len(steps) == 5
    assert steps["role"].iloc[0] == "follows" and steps["role"].iloc[-1] == "saturated"
    plateau = steps[steps["role"] == "saturated"]
    assert plateau["finished_per_s"].max() <= 1.1 / DELAY  # the sleep bounds it
    assert (plateau["latency_p99_s"] > steps["latency_p99_s"].iloc[0]).all()
    assert not steps["generator_bound"].any()
