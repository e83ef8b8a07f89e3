"""``make test`` runs the whole suite: its three pytest runs (the tests that only compute,
on two processes; the tests of real parts that do not time, on two processes; the tests that
measure, alone) cover every test file of ``tests/`` once, so a new one can never be left out
of CI, and the tests that measure never share the machine."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def files_of(path: str) -> list[str]:
    """The test files a path given to pytest holds (a folder: every ``test_*.py`` in it)."""
    p = REPO / path
    found = sorted(p.rglob("test_*.py")) if p.is_dir() else [p]
    return [f.relative_to(REPO).as_posix() for f in found]


def test_make_test_runs_every_test_once() -> None:
    plan = subprocess.run(
        ["make", "-n", "--no-print-directory", "test"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    runs = [shlex.split(line) for line in plan.splitlines() if " -m pytest " in line]
    assert len(runs) == 3, plan
    computed, shared, alone = ([a for a in run if a.startswith("tests")] for run in runs)
    assert "-n" in runs[0] and "-n" in runs[1] and "-n" not in runs[2]
    # the load tests, knee ramps, CPU limits and the twin's measured runs are all alone
    assert "tests/load" in alone and "tests/test_notebooks.py" in alone
    assert "tests/postgres/test_loop_twin_workers.py" in alone
    covered = [f for path in computed + shared + alone for f in files_of(path)]
    every = sorted(f.relative_to(REPO).as_posix() for f in (REPO / "tests").rglob("test_*.py"))
    assert sorted(covered) == every  # each test file once: none left out, none run twice
