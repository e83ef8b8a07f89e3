"""An empirical distribution read from a CSV beside the scenario (``file = "..."``), and the
twin's scenario using it instead of one line thousands of values long."""

from __future__ import annotations

from pathlib import Path

import pytest

from cqrs_lab.errors import ScenarioError
from cqrs_lab.load.twin import Calibration
from cqrs_lab.sim import load_scenario

SCENARIO = """
[scenario]
duration = 5.0

[workload.arrivals]
process = "poisson"
rate = 50.0

[commands]
service = {{ dist = "empirical", {service} }}
"""


def _write(folder: Path, service: str) -> Path:
    path = folder / "s.toml"
    path.write_text(SCENARIO.format(service=service))
    return path


def test_samples_come_from_a_csv_relative_to_the_scenario(tmp_path: Path) -> None:
    sub = tmp_path / "data"
    sub.mkdir()
    (sub / "times.csv").write_text("service_s\n0.001\n0.003\n\n0.002\n")
    s = load_scenario(_write(tmp_path, 'file = "data/times.csv"'))
    dist = s.commands.service
    assert dist.kind == "empirical" and dist.samples == (0.001, 0.003, 0.002)
    assert dist.mean == pytest.approx(0.002)
    # the same file given inline gives the same distribution
    inline = load_scenario(_write(tmp_path, "samples = [0.001, 0.003, 0.002]"))
    assert inline.commands.service == dist


@pytest.mark.parametrize(
    ("service", "content", "match"),
    [
        ('file = "missing.csv"', None, r"'commands\.service\.file' cannot be read"),
        ('file = "t.csv"', "0.001\n-1\n", r"t\.csv line 2: want a time in seconds >= 0"),
        ('file = "t.csv"', "0.001\nabc\n", r"line 2: want a time in seconds >= 0"),
        ('file = "t.csv"', "service_s\n", "holds no time"),
        ('file = ""', None, "must name a CSV"),
        ("file = 3", None, r"'commands\.service\.file' must be a string"),
        ('file = "t.csv", samples = [0.1]', "0.1\n", "both samples and file"),
        ('file = "t.csv", colour = 1', "0.1\n", "unknown key 'commands.service.colour'"),
        ("mean = 0.1", None, r"'commands\.service\.samples' .*\(or give file = \"times\.csv\""),
    ],
)
def test_a_bad_samples_file_names_the_key_and_the_fix(
    tmp_path: Path, service: str, content: str | None, match: str
) -> None:
    if content is not None:
        (tmp_path / "t.csv").write_text(content)
    with pytest.raises(ScenarioError, match=match):
        load_scenario(_write(tmp_path, service))


def test_the_twin_writes_its_service_samples_beside_the_scenario(tmp_path: Path) -> None:
    samples = tuple(0.001 + 0.000001 * i for i in range(3000))
    cal = Calibration(
        command_samples=samples,
        base_latency_s=(0.001,),
        base_lag_s=(0.0002,),
        per_event={"balances": 1e-5},
        mix={"deposit": 1.0},
        keys=50,
    )
    path = cal.write(tmp_path / "twin-scenario.toml", rate=100.0, duration=5.0)
    text = path.read_text()
    assert max(len(line) for line in text.splitlines()) < 200  # no line of 3000 values
    assert 'service = { dist = "empirical", file = "twin-scenario-service.csv" }' in text
    rows = (tmp_path / "twin-scenario-service.csv").read_text().splitlines()
    assert rows[0] == "service_s" and len(rows) == 1 + len(samples)
    s = load_scenario(path)
    assert len(s.commands.service.samples) == len(samples)
    assert s.commands.service.mean == pytest.approx(cal.service_mean(100.0), rel=1e-6)
