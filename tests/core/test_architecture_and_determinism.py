"""The layers import one way, exceptions live in one module, and the engine is deterministic."""

from __future__ import annotations

import ast
import builtins
import random
from pathlib import Path

import pytest

import cqrs_lab.errors
from cqrs_lab.core import Engine, FaultPlan, ManualClock, UuidIds
from cqrs_lab.domains import bank
from cqrs_lab.errors import CommandRefused
from tests.core.architecture import RULES, check_package, rule_for
from tests.core.purity import impurities

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "cqrs_lab" / "core"
#: (file, name) pairs of the core allowed to touch a clock: the real-time driver's clock
PURITY_EXEMPT = {("clock.py", "time.monotonic")}
#: exception classes allowed outside errors.py ("path": reason); every entry needs a reason
EXCEPTIONS_ELSEWHERE: dict[str, str] = {}


def test_every_layer_imports_only_what_the_architecture_allows() -> None:
    found = check_package(ROOT)
    if found.all:
        pytest.fail(str(found), pytrace=False)


def test_the_architecture_test_catches_every_kind_of_violation(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "errors.py": "",
        "core/__init__.py": "",
        "core/bad.py": (
            "from __future__ import annotations\n"
            "import pandas as pd\n"
            "from ..sim import run\n"
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from cqrs_lab.checks import report\n"
            "def later():\n"
            "    import simpy\n"
        ),
        "core/fine.py": "import random\nfrom cqrs_lab.errors import X\nfrom . import bad\n",
        "checks/__init__.py": "",
        "checks/report.py": "def frame():\n    import pandas\n",
        "domains/__init__.py": "",
        "domains/shop/__init__.py": "from cqrs_lab.domains.shop import model\n",
        "domains/shop/model.py": "import hypothesis\nfrom cqrs_lab.domains import park\n",
        "domains/park/__init__.py": "def s():\n    from hypothesis import strategies\n",
        "sim/__init__.py": "from cqrs_lab.sim import a\n",
        "sim/a.py": "from cqrs_lab.sim.b import x\n",
        "sim/b.py": "def f():\n    import cqrs_lab.sim\n",
        "sim/c.py": "from cqrs_lab.domains.shop.model import Buy\n",
        "stray.py": "",
    }
    for name, text in files.items():
        path = tmp_path / "cqrs_lab" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    found = check_package(tmp_path)
    text = str(found)
    breaches = "\n".join(line for lines in found.layers.values() for line in lines)
    assert "cqrs_lab/core/bad.py:2: cqrs_lab.core.bad imports pandas" in breaches
    assert "cqrs_lab/core/bad.py:3: cqrs_lab.core.bad imports cqrs_lab.sim" in breaches
    assert "imports cqrs_lab.checks.report (under TYPE_CHECKING)" in breaches
    assert "imports simpy (inside a function)" in breaches
    assert "cqrs_lab.core.fine" not in breaches  # stdlib, errors and its own layer are fine
    assert "cqrs_lab.checks.report imports" not in breaches  # pandas in a function is allowed
    assert "cqrs_lab.domains.shop.model imports hypothesis" in breaches  # not in a function
    assert "cqrs_lab.domains.park imports" not in breaches  # hypothesis in a function: fine
    assert found.domains == [
        "cqrs_lab/domains/shop/model.py:2: cqrs_lab.domains.shop.model imports "
        "cqrs_lab.domains.park",
        "cqrs_lab/sim/c.py:1: cqrs_lab.sim.c imports cqrs_lab.domains.shop.model",
    ]
    assert found.unruled == ["cqrs_lab.stray (cqrs_lab/stray.py)"]
    # the package imports a, a imports b, and b imports the package back inside a function
    assert len(found.cycles) == 1 and "3 modules in a cycle" in found.cycles[0], text
    assert "cqrs_lab.sim.b -> cqrs_lab.sim (cqrs_lab/sim/b.py:2, in a function)" in text
    assert text.startswith(f"{len(found.all)} architecture violations:")


def test_the_most_specific_layer_rule_wins() -> None:
    assert rule_for("cqrs_lab.sim.queueing.tdist") == (
        "cqrs_lab.sim.queueing",
        RULES["cqrs_lab.sim.queueing"],
    )
    assert rule_for("cqrs_lab.sim.simulation") == ("cqrs_lab.sim", RULES["cqrs_lab.sim"])
    assert rule_for("cqrs_lab.domains.bank.http") == (
        "cqrs_lab.domains.*.http",
        RULES["cqrs_lab.domains.*.http"],
    )
    assert rule_for("cqrs_lab") == ("cqrs_lab", RULES["cqrs_lab"])
    assert rule_for("cqrs_lab.newthing") is None  # the root's rule covers only the root


def test_core_never_sleeps_or_reads_a_clock_or_draws_unseeded_randomness() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    found = [
        line
        for path in files
        for line in impurities(
            path, {n for f, n in PURITY_EXEMPT if f == path.relative_to(CORE).as_posix()}
        )
    ]
    assert found == [], "\n".join(found)


def test_the_purity_test_catches_clocks_sleeps_and_global_random(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import random, uuid\n"
        "import datetime as dt\n"
        "from time import sleep\n"
        "from dataclasses import field\n"
        "def f(rng: random.Random) -> None:\n"
        "    sleep(1)\n"
        "    dt.datetime.now()\n"
        "    random.random()\n"
        "    random.Random()\n"
        "    rng.random(); random.Random(3); random.Random(rng.getrandbits(64))\n"
        "ident: str = field(default_factory=uuid.uuid4)\n"
    )
    found = [line.split(": ", 1)[1] for line in impurities(bad)]
    assert found == [
        "uses time.sleep",
        "uses datetime.datetime.now",
        "uses random.random",
        "random.Random() without a seed",
        "uses uuid.uuid4",
    ]
    assert impurities(bad, {"time.sleep", "uuid.uuid4"}) != impurities(bad)


# -- every exception lives in errors.py -----------------------------------------------------------

BUILTIN_EXCEPTIONS = {
    n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)
}
OUR_EXCEPTIONS = {
    n
    for n, v in vars(cqrs_lab.errors).items()
    if isinstance(v, type) and issubclass(v, BaseException)
}


def _base_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def exception_classes(path: Path) -> list[str]:
    """Classes in ``path`` deriving from an exception: a builtin one, one of errors.py, one
    whose name says so (``...Error``, ``...Exception``), or one defined so in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    known = BUILTIN_EXCEPTIONS | OUR_EXCEPTIONS
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = {_base_name(b) for b in node.bases}
        if bases & known or any(b.endswith(("Error", "Exception")) for b in bases):
            known.add(node.name)
            found.append(f"{node.name} (line {node.lineno})")
    return found


def test_every_exception_class_is_defined_in_errors_py() -> None:
    package = ROOT / "cqrs_lab"
    found = {
        path.relative_to(ROOT).as_posix(): classes
        for path in sorted(package.rglob("*.py"))
        if path != package / "errors.py"
        and (classes := exception_classes(path))
        and path.relative_to(ROOT).as_posix() not in EXCEPTIONS_ELSEWHERE
    }
    assert found == {}, "move these to cqrs_lab/errors.py (re-export where they were): " + str(
        found
    )
    assert len(exception_classes(package / "errors.py")) == len(OUR_EXCEPTIONS) > 10


def test_the_exception_test_catches_an_exception_defined_elsewhere(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from cqrs_lab.errors import NotFound\n"
        "import starlette.exceptions as ex\n"
        "class Gone(NotFound): ...\n"
        "class Problem(ex.HTTPException): ...\n"
        "class Fault(Exception): ...\n"
        "class Worse(Fault): ...\n"
        "class Table(dict): ...\n"
    )
    assert exception_classes(bad) == [
        "Gone (line 3)",
        "Problem (line 4)",
        "Fault (line 5)",
        "Worse (line 6)",
    ]


# -- determinism -----------------------------------------------------------------------------------


def run_bank(seed: int, uuids: bool = False) -> tuple[list[tuple], dict]:
    """A seeded mix with faults; only a business refusal (CommandRefused) is expected: any
    other exception from the engine fails the test."""
    rng = random.Random(seed)
    ids = UuidIds(random.Random(seed)) if uuids else None
    engine = Engine(clock=ManualClock(), rng=random.Random(seed), ids=ids)
    plan = FaultPlan(duplicate=0.1, reorder=0.1, drop=0.05, crash=0.01)
    app = bank.install(engine, delivery="at-least-once", faults=plan, batch_size=8)
    for i in range(20):
        engine.dispatch(bank.OpenAccount(str(i), f"o{i}", 100))
    refused: list[str] = []
    for n in range(400):
        engine.clock.advance(rng.random() * 0.01)  # type: ignore[attr-defined]
        kind = rng.choice(["deposit", "withdraw", "transfer"])
        a, b = rng.sample(range(20), 2)
        amount = rng.randint(1, 50)
        command: bank.Deposit | bank.Withdraw | bank.RequestTransfer
        if kind == "deposit":
            command = bank.Deposit(str(a), amount)
        elif kind == "withdraw":
            command = bank.Withdraw(str(a), amount)
        else:
            command = bank.RequestTransfer(f"t{n}", str(a), str(b), amount)
        try:
            engine.dispatch(command)
        except CommandRefused as refusal:
            refused.append(refusal.reason)
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
    models["refused"] = refused
    return log, models


def test_same_seed_gives_identical_logs_and_read_models() -> None:
    first = run_bank(7)
    assert first == run_bank(7)
    assert run_bank(7, uuids=True) == run_bank(7, uuids=True)
    log, models = first
    assert 0 < len(models["refused"]) < 400 < len(log)  # refusals happen, most commands pass


def test_another_seed_gives_another_history() -> None:
    assert run_bank(7)[0] != run_bank(8)[0]
