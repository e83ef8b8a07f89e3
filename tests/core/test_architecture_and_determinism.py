from __future__ import annotations

import ast
import random
from pathlib import Path

from cqrs_lab.core import Engine, FaultPlan, ManualClock, UuidIds
from cqrs_lab.domains import bank

CORE = Path(__file__).resolve().parents[2] / "cqrs_lab" / "core"
FORBIDDEN = {
    "simpy", "pandas", "numpy", "matplotlib", "starlette", "fastapi", "uvicorn", "locust",
    "hypothesis", "cqrs_lab.sim", "cqrs_lab.http", "cqrs_lab.load", "cqrs_lab.checks",
}  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_nothing_from_drivers_or_heavy_libraries() -> None:
    files = sorted(CORE.glob("*.py"))
    assert len(files) > 10
    offenders = {
        f"{path.name}: {name}"
        for path in files
        for name in imported_modules(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    }
    assert offenders == set()


def test_core_never_sleeps_or_reads_the_wall_clock_or_global_random() -> None:
    bad_calls = ("time.sleep", "time.time", "datetime.now", "random.random(", "random.randint(")
    for path in CORE.glob("*.py"):
        text = path.read_text()
        assert not [c for c in bad_calls if c in text], path.name


def test_the_architecture_test_would_catch_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import pandas as pd\nfrom cqrs_lab.sim import run\n")
    assert {"pandas", "cqrs_lab.sim"} <= imported_modules(bad)


def run_bank(seed: int, uuids: bool = False) -> tuple[list[tuple], dict]:
    rng = random.Random(seed)
    ids = UuidIds(random.Random(seed)) if uuids else None
    engine = Engine(clock=ManualClock(), rng=random.Random(seed), ids=ids)
    plan = FaultPlan(duplicate=0.1, reorder=0.1, drop=0.05, crash=0.01)
    app = bank.install(engine, delivery="at-least-once", faults=plan, batch_size=8)
    for i in range(20):
        engine.dispatch(bank.OpenAccount(str(i), f"o{i}", 100))
    for n in range(400):
        engine.clock.advance(rng.random() * 0.01)  # type: ignore[attr-defined]
        kind = rng.choice(["deposit", "withdraw", "transfer"])
        a, b = rng.sample(range(20), 2)
        try:
            if kind == "deposit":
                engine.dispatch(bank.Deposit(str(a), rng.randint(1, 50)))
            elif kind == "withdraw":
                engine.dispatch(bank.Withdraw(str(a), rng.randint(1, 50)))
            else:
                engine.dispatch(bank.RequestTransfer(f"t{n}", str(a), str(b), rng.randint(1, 50)))
        except Exception:
            pass
        if n % 25 == 0:
            engine.pump()
            for sub in engine.subscriptions.values():
                if sub.crashed:
                    sub.restart()
    for _ in range(50):
        engine.run_until_idle()
        crashed = [s for s in engine.subscriptions.values() if s.crashed]
        if not crashed:
            break
        for s in crashed:
            s.restart()
    log = [tuple(e) for e in engine.store.read_all(0)]
    models = {name: sub.consumer.state() for name, sub in engine.subscriptions.items()}
    models["stats"] = {s["name"]: s for s in app.engine.stats()}
    return log, models


def test_same_seed_gives_identical_logs_and_read_models() -> None:
    assert run_bank(7) == run_bank(7)
    assert run_bank(7, uuids=True) == run_bank(7, uuids=True)


def test_another_seed_gives_another_history() -> None:
    assert run_bank(7)[0] != run_bank(8)[0]
