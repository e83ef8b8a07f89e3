"""``cqrs-lab loadtest`` argument handling and ``cqrs-lab twin`` on recorded data; the
docstring examples of cqrs_lab.load."""

from __future__ import annotations

import argparse
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import cqrs_lab.load
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.cli import options, register
from cqrs_lab.sim import load_scenario
from tests.load.test_twin import synthetic_run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser


def test_loadtest_arguments_become_options() -> None:
    args = _parser().parse_args(
        [
            "loadtest",
            "--rate",
            "80",
            "--duration",
            "12",
            "--processes",
            "2",
            "--faults",
            "6:crash=balances",
            "--faults",
            "9:clear",
            "--classes",
            "WriterUser",
        ]
    )
    opts = options(args)
    assert (opts.model, opts.rate, opts.duration, opts.processes) == ("open", 80.0, 12.0, 2)
    assert [f.at for f in opts.faults] == [6.0, 9.0]
    assert opts.classes == ("WriterUser",)
    assert opts.pool_size() == 20  # 80/s at about 4 tasks/s per user
    closed = options(_parser().parse_args(["loadtest", "--users", "7"]))
    assert (closed.model, closed.pool_size()) == ("closed", 7)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["loadtest", "--classes", "Nobody"], "user classes"),
        (["loadtest", "--rate", "-3"], "--rate"),
        (["loadtest", "--processes", "0"], "--processes"),
        (["loadtest", "--host", "localhost:80"], "--host"),
        (["loadtest", "--faults", "soon:crash=balances"], "--faults"),
    ],
)
def test_bad_loadtest_arguments_are_refused_clearly(argv: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        options(_parser().parse_args(argv))


def test_twin_prints_the_table_and_writes_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for rate in (10, 30):
        synthetic_run(tmp_path / f"rate-{rate}", rate=rate, cpu_per_s=0.01 * rate)
    args = _parser().parse_args(["twin", str(tmp_path)])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "calibrated from" in out and "rate-10*" in out and "cmd_p95" in out
    assert (tmp_path / "twin.csv").exists() and (tmp_path / "twin.png").exists()
    assert load_scenario(tmp_path / "twin-scenario.toml").commands.handlers == 1


def test_twin_on_an_empty_folder_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parser().parse_args(["twin", str(tmp_path)])
    assert args.run(args) == 2
    assert "no load test results" in capsys.readouterr().err


MODULES = sorted(m.name for m in pkgutil.walk_packages(cqrs_lab.load.__path__, "cqrs_lab.load."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
