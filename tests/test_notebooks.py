"""Every notebook runs top to bottom with its default parameters, as `make test` promises:
here the ones that load a real server or start PostgreSQL (and any notebook not listed as
only simulating in :mod:`tests.notebook_runs`), run alone; the others in
``tests/test_notebooks_simulated.py``.

Notebook 7 ("Many writers") starts a throwaway PostgreSQL cluster: it needs the server
binaries (Debian package ``postgresql``, which ``make test`` installs when missing) and
fails saying so without them, never skips.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notebook_runs import NOTEBOOKS, SIMULATED, run_notebook

REAL = [p for p in NOTEBOOKS if p.stem not in SIMULATED]


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 7
    assert "07-many-writers" in {p.stem for p in REAL}
    assert "05-load-test-vs-simulation" in {p.stem for p in REAL}
    assert {p.stem for p in NOTEBOOKS} >= SIMULATED  # each one listed exists


@pytest.mark.parametrize("path", REAL, ids=[p.stem for p in REAL])
def test_notebook_runs_with_its_defaults(path: Path, tmp_path: Path) -> None:
    run_notebook(path, tmp_path)
