"""Results show as short reprs and as HTML tables in a notebook, failures highlighted."""

from __future__ import annotations

from cqrs_lab.sim import builtin_scenario, simulate


def test_simulation_result_repr_is_short_and_html_highlights_unmet_slos() -> None:
    scenario = builtin_scenario("baseline")
    result = simulate(scenario, duration=3, seed=2)
    assert len(repr(result)) < 300 and "commands=" in repr(result)
    html = result._repr_html_()
    assert "summary" in html and "SLOs" in html
    met = result.slo["met"].astype(bool)
    assert ("#e6f4ea" in html) == bool(met.any())
    assert ("#fde2e1" in html) == bool((~met).any())
    # an impossible objective is unmet and shows red
    strict = scenario.with_(slos=tuple(s.__class__(**{**s.__dict__, "threshold": 1e-9})
                                       for s in scenario.slos))  # fmt: skip
    assert "#fde2e1" in simulate(strict, duration=3, seed=2)._repr_html_()
