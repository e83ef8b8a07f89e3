"""Analytic oracles against values derived independently of the code under test.

Independent derivations used here: published textbook values; the factorial form of
Erlang B/C evaluated exactly with fractions; and the stationary distribution of the
M/M/c/K birth-death chain obtained by solving the global balance equations pi Q = 0 of its
generator matrix with linear algebra (not the product form the oracle uses).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.queueing import tdist
from cqrs_lab.sim.queueing.oracles import (
    allen_cunneen,
    check_littles_law,
    erlang_b,
    erlang_c,
    kingman,
    mm1,
    mmc,
    mmck,
)


def exact_erlang_b(c: int, a: int) -> Fraction:
    terms = [Fraction(a**k, math.factorial(k)) for k in range(c + 1)]
    return terms[c] / sum(terms)


def exact_erlang_c(c: int, a: Fraction) -> Fraction:
    """Erlang C from its textbook factorial form, exactly."""
    head = sum(a**k / math.factorial(k) for k in range(c))
    tail = a**c / math.factorial(c) * Fraction(c) / (c - a)
    return tail / (head + tail)


def balance_distribution(lam: float, mu: float, c: int, k: int) -> np.ndarray:
    """Stationary distribution of M/M/c/K from pi Q = 0, sum(pi) = 1 (least squares)."""
    q = np.zeros((k + 1, k + 1))
    for n in range(k + 1):
        if n < k:
            q[n, n + 1] = lam
        if n > 0:
            q[n, n - 1] = min(n, c) * mu
        q[n, n] = -q[n].sum()
    system = np.vstack([q.T, np.ones(k + 1)])
    rhs = np.zeros(k + 2)
    rhs[-1] = 1.0
    pi, *_ = np.linalg.lstsq(system, rhs, rcond=None)
    return pi


def test_erlang_c_textbook_value_c4() -> None:
    m = mmc(3.2, 1.0, 4)
    assert m.wq == pytest.approx(0.74554, abs=5e-6)
    assert m.p_wait == pytest.approx(float(exact_erlang_c(4, Fraction(16, 5))), rel=1e-12)
    assert m.w == pytest.approx(m.wq + 1.0, rel=1e-12)
    assert m.utilisation == pytest.approx(0.8)


def test_mm1_textbook_values() -> None:
    m = mm1(0.8, 1.0)
    assert (m.wq, m.w, m.lq, m.l, m.p_wait) == pytest.approx((4.0, 5.0, 3.2, 4.0, 0.8))


def test_mm2_closed_form() -> None:
    # M/M/2 with lambda = mu = 1: P0 = 1/3, Lq = rho^3 * 2 / (1 - rho^2) ... = 1/3
    m = mmc(1.0, 1.0, 2)
    assert (m.p_wait, m.lq, m.wq) == pytest.approx((1 / 3, 1 / 3, 1 / 3), rel=1e-12)


@pytest.mark.parametrize(("c", "a"), [(1, 1), (5, 3), (10, 7), (40, 35)])
def test_erlang_b_matches_factorial_form(c: int, a: int) -> None:
    assert erlang_b(c, a) == pytest.approx(float(exact_erlang_b(c, a)), rel=1e-12)


def test_erlang_b_table_value() -> None:
    assert erlang_b(5, 3.0) == pytest.approx(0.11005, abs=5e-6)  # Erlang B tables


def test_erlang_c_stable_for_hundreds_of_servers() -> None:
    c, a = 300, 285
    got = erlang_c(c, float(a))
    assert got == pytest.approx(float(exact_erlang_c(c, Fraction(a))), rel=1e-9)
    m = mmc(285.0, 1.0, 300)
    assert math.isfinite(m.wq) and 0 < m.wq < 1


@pytest.mark.parametrize(
    ("lam", "mu", "c", "k"),
    [(3.0, 1.0, 2, 5), (0.8, 1.0, 1, 4), (12.0, 1.0, 10, 14), (5.0, 1.0, 3, 3)],
)
def test_mmck_against_global_balance(lam: float, mu: float, c: int, k: int) -> None:
    pi = balance_distribution(lam, mu, c, k)
    m = mmck(lam, mu, c, k)
    n = np.arange(k + 1)
    assert m.p_block == pytest.approx(pi[k], rel=1e-9)
    assert m.l == pytest.approx(float((n * pi).sum()), rel=1e-9)
    assert m.lq == pytest.approx(float((np.maximum(n - c, 0) * pi).sum()), rel=1e-9, abs=1e-15)
    assert m.throughput == pytest.approx(lam * (1 - pi[k]), rel=1e-9)
    assert m.wq * m.throughput == pytest.approx(m.lq, rel=1e-9, abs=1e-15)


def test_mmck_special_cases() -> None:
    # M/M/1/K closed form and M/M/c/c = Erlang B
    rho, k = 0.8, 6
    assert mmck(0.8, 1.0, 1, k).p_block == pytest.approx((1 - rho) * rho**k / (1 - rho ** (k + 1)))
    assert mmck(7.0, 1.0, 10, 10).p_block == pytest.approx(float(exact_erlang_b(10, 7)))
    # overloaded is fine when bounded; a huge bound approaches M/M/c
    assert 0 < mmck(2.0, 1.0, 1, 10).p_block < 1
    assert mmck(3.2, 1.0, 4, 2000).wq == pytest.approx(mmc(3.2, 1.0, 4).wq, rel=1e-9)
    assert math.isfinite(mmck(500.0, 1.0, 400, 800).p_block)


def test_kingman_and_allen_cunneen() -> None:
    assert kingman(0.8, 1.0) == pytest.approx(mm1(0.8, 1.0).wq)
    # M/D/1 Pollaczek-Khinchine: Wq = rho / (2 mu (1 - rho))
    assert kingman(0.5, 2.0, ca2=1.0, cs2=0.0) == pytest.approx(0.25 / (2 * 2.0 * 0.75))
    assert allen_cunneen(3.2, 1.0, 4) == pytest.approx(mmc(3.2, 1.0, 4).wq)
    assert allen_cunneen(3.2, 1.0, 4, ca2=0.5, cs2=0.5) == pytest.approx(mmc(3.2, 1.0, 4).wq / 2)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: mmc(4.0, 1.0, 4), "must be < 1"),
        (lambda: mm1(1.2, 1.0), "utilisation"),
        (lambda: mmc(-1.0, 1.0, 2), "arrival_rate"),
        (lambda: mmc(1.0, 0.0, 2), "service_rate"),
        (lambda: mmc(1.0, float("nan"), 2), "service_rate"),
        (lambda: mmc(1.0, 1.0, 0), "servers must be an integer >= 1"),
        (lambda: mmc(1.0, 1.0, True), "servers"),
        (lambda: mmc(1.0, 1.0, 2.0), "servers"),  # type: ignore[arg-type]
        (lambda: mmck(1.0, 1.0, 3, 2), "capacity must be an integer >= 3"),
        (lambda: erlang_c(2, 2.0), "offered_load"),
        (lambda: kingman(0.5, 1.0, ca2=-1.0), "ca2"),
        (lambda: check_littles_law({}), "stages"),
    ],
)
def test_bad_parameters_raise_config_error(call: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        call()  # type: ignore[operator]


def test_littles_law_names_the_violating_stage() -> None:
    report = check_littles_law(
        {"queue": (3.2, 0.8, 4.0), "service": (0.9, 0.8, 1.0), "system": (4.0, 0.8, 5.0)},
        rel_tol=0.05,
    )
    assert not report.ok
    assert [c.stage for c in report.violations] == ["service"]
    assert "service" in report.describe() and "VIOLATED" in report.describe()
    assert check_littles_law({"a": (0.84, 0.8, 1.0)}, rel_tol=0.05).ok


@pytest.mark.parametrize(
    ("p", "df", "table"),
    [
        (0.975, 1, 12.7062),
        (0.975, 4, 2.7764),
        (0.975, 9, 2.2622),
        (0.975, 29, 2.0452),
        (0.995, 10, 3.1693),
        (0.95, 19, 1.7291),
        (0.025, 9, -2.2622),
    ],
)
def test_t_quantile_matches_tables(p: float, df: int, table: float) -> None:
    assert tdist.t_quantile(p, df) == pytest.approx(table, abs=1e-4)


def test_t_cdf_inverts_quantile_and_bad_input() -> None:
    assert tdist.t_cdf(tdist.t_quantile(0.9, 7), 7) == pytest.approx(0.9, abs=1e-12)
    with pytest.raises(ConfigError, match="df"):
        tdist.t_quantile(0.9, 0)
    with pytest.raises(ConfigError, match="at least 2"):
        tdist.mean_ci([1.0])
