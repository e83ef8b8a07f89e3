"""The twin's queueing judged at the server's measured CPU per command: every cost scaled by
the measured over the twin's CPU at a level, the level simulated again, shown apart from
the verdicts (:mod:`cqrs_lab.load.knee_cpu_matched`)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.knee_cpu_matched import cpu_matched, cpu_matched_line, scaled_costs
from cqrs_lab.load.loop_calibration import sim_cpu
from cqrs_lab.load.loop_twin import LoopCalibration

CAL = LoopCalibration(command_s=(3e-5,), query_s=(1e-5,), per_event={"balances": 2e-5},
                      per_batch={"balances": 1e-5}, request_s=2.5e-4, reads_per_command=1.0,
                      mix={"deposit": 1.0}, keys=100, batch_s=5e-5,
                      transport_s=(3e-5,))  # fmt: skip


def _level(sent: float, server_cpu: float, twin_cpu: float, calibration: bool) -> pd.DataFrame:
    return pd.DataFrame({
        "sent_commands_per_s": sent, "server_cpu": server_cpu, "server_idle_cpu": 0.0,
        "twin_cpu": twin_cpu, "calibration": calibration,
        "metric": ["throughput_per_s", "command_latency_p50_s", "lag_p95_s"],
        "measured": [sent, 0.001, 0.0005],
    })  # fmt: skip


def test_the_scaled_twin_spends_the_measured_cpu_and_only_judged_levels_are_matched() -> None:
    twin = sim_cpu(CAL, 400.0, duration=5.0)
    table = pd.concat([
        _level(100.0, 0.05, 0.05, calibration=True),  # the calibration level: not judged
        _level(400.0, 0.8 * twin, twin, calibration=False),
        _level(600.0, math.nan, 0.3, calibration=False),  # no CPU measured: not matched
    ])  # fmt: skip
    matched = cpu_matched(table, CAL, duration=5.0)
    assert set(matched["sent_commands_per_s"]) == {400.0}
    assert set(matched["metric"]) == {"command_latency_p50_s", "lag_p95_s"}
    assert matched["factor"].iloc[0] == pytest.approx(0.8)
    # every cost scaled: the loop spends the measured CPU (batches barely move at 80%)
    assert sim_cpu(scaled_costs(CAL, 0.8), 400.0, duration=5.0) == pytest.approx(
        0.8 * twin, rel=0.03
    )
    for r in matched.to_dict("records"):
        assert r["rel_error"] == pytest.approx(r["predicted"] / r["measured"] - 1)
        assert r["within"] == (abs(r["rel_error"]) <= 0.2)
    line = cpu_matched_line(matched, 1000.0)[0]
    assert f"{int(matched['within'].sum())} of 2 within band (40% x0.80 " in line
    assert cpu_matched_line(matched.iloc[0:0], 1000.0) == []


@pytest.mark.parametrize("factor", [0.0, -1.0, math.nan, math.inf])
def test_a_factor_that_is_no_positive_number_is_refused(factor: float) -> None:
    with pytest.raises(ConfigError, match="factor="):
        scaled_costs(CAL, factor)
