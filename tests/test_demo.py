"""``cqrs-lab demo`` runs any domain's workload by reference, seeded, and checks it."""

from __future__ import annotations

import pytest

from cqrs_lab.cli import main
from cqrs_lab.core import Domain
from cqrs_lab.demo import run_domain
from cqrs_lab.domains import bank
from cqrs_lab.errors import ConfigError


def test_the_default_domain_is_the_bank_and_every_view_catches_up() -> None:
    summary = run_domain(keys=20, commands=300, seed=5)
    assert summary["domain"] == "bank" and summary["accounts"] == 20
    assert summary["accepted"] + summary["refused"] == 300
    kinds = {k: v for k, v in summary.items() if k.startswith("kind ")}
    assert set(kinds) == {"kind deposit", "kind withdraw", "kind transfer"}
    assert sum(int(v.split()[0]) for v in kinds.values()) == 300
    for view in bank.domain.view_names:
        assert summary[f"{view} position"] == summary["events"]
    assert summary["invariants"] == "pass"


def test_the_same_seed_gives_the_same_summary_and_another_seed_another() -> None:
    first = run_domain("cqrs_lab.domains.inventory", keys=10, commands=200, seed=3)
    assert first == run_domain("cqrs_lab.domains.inventory", keys=10, commands=200, seed=3)
    assert first != run_domain("cqrs_lab.domains.inventory", keys=10, commands=200, seed=4)
    assert first["refused"] > 0  # ships and releases of orders that hold nothing are refused


def test_bad_arguments_are_refused_naming_them() -> None:
    with pytest.raises(ConfigError, match="keys=1: domain 'bank' needs at least 2"):
        run_domain(keys=1)
    with pytest.raises(ConfigError, match="commands=-1"):
        run_domain(commands=-1)
    without = Domain("quiet", "", (), {}, ())
    with pytest.raises(ConfigError, match="domain='quiet' declares no workload"):
        run_domain(without)


def test_the_command_line_prints_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["demo", "--domain", "cqrs_lab.domains.inventory", "--keys", "4", "--commands", "50"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].split() == ["domain", "inventory"]
    assert "stock position" in out and "invariants" in out


def test_the_command_line_names_a_domain_it_cannot_load(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--domain", "nowhere.orders:domain"]) == 2
    assert "cannot import module 'nowhere.orders'" in capsys.readouterr().err
