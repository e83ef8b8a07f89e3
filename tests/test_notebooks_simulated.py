"""The notebooks that only simulate (:data:`tests.notebook_runs.SIMULATED`) run top to
bottom with their default parameters; `make test` runs them beside the other tests that
only compute, on two processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notebook_runs import NOTEBOOKS, SIMULATED, run_notebook

SIMULATING = [p for p in NOTEBOOKS if p.stem in SIMULATED]


@pytest.mark.parametrize("path", SIMULATING, ids=[p.stem for p in SIMULATING])
def test_notebook_runs_with_its_defaults(path: Path, tmp_path: Path) -> None:
    run_notebook(path, tmp_path)
