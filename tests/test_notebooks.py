"""Every notebook runs top to bottom with its default parameters, as `make test` promises.

Notebook 7 ("Many writers") starts a throwaway PostgreSQL cluster: it needs the server
binaries (Debian package ``postgresql``, which ``make test`` installs when missing) and
fails saying so without them, never skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 7
    assert "07-many-writers" in {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_with_its_defaults(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
        "notebooks are stored without outputs; clear them before committing"
    )
    assert "parameters" in nb.cells[1].get("metadata", {}).get("tags", []) or any(
        "parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells[:3]
    ), "the parameter cell comes first and is tagged 'parameters'"
    os.environ["CQRS_LAB_RESULTS"] = str(tmp_path)  # notebooks write results here
    client = NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
