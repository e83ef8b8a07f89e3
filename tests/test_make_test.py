"""``make test`` runs the whole suite: its two pytest runs (the tests that only compute on
two processes, then the tests of real parts alone) cover every test folder and file of
``tests/`` once, so a new one can never be left out of CI."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_make_test_runs_every_test_once() -> None:
    plan = subprocess.run(
        ["make", "-n", "--no-print-directory", "test"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    runs = [shlex.split(line) for line in plan.splitlines() if " -m pytest " in line]
    assert len(runs) == 2, plan
    computed, real = ([a for a in run if a.startswith("tests")] for run in runs)
    assert "-n" in runs[0] and "-n" not in runs[1]  # real parts never share the machine
    every = sorted(
        p.relative_to(REPO).as_posix()
        for p in (REPO / "tests").iterdir()
        if (p.is_dir() and any(p.glob("test_*.py"))) or p.match("test_*.py")
    )
    assert sorted(computed + real) == every
    assert not set(computed) & set(real)
