"""Running a notebook top to bottom with its default parameters, for the two notebook tests:
``tests/test_notebooks_simulated.py`` (the notebooks that only simulate, which ``make test``
runs beside the other tests that only compute) and ``tests/test_notebooks.py`` (the ones
that load a real server or start PostgreSQL, run alone; any notebook not named here too)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: notebooks that only simulate: no server, no Locust, no database
SIMULATED = frozenset(
    {
        "01-quick-start",
        "02-delivery-semantics",
        "03-capacity-planning",
        "04-failures-and-backpressure",
        "06-model-your-own-system",
    }
)


def run_notebook(path: Path, results: Path) -> None:
    """Check the stored notebook (no outputs, a tagged parameter cell first), then run it,
    its results written under ``results``."""
    nb = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
        "notebooks are stored without outputs; clear them before committing"
    )
    assert "parameters" in nb.cells[1].get("metadata", {}).get("tags", []) or any(
        "parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells[:3]
    ), "the parameter cell comes first and is tagged 'parameters'"
    os.environ["CQRS_LAB_RESULTS"] = str(results)  # notebooks write results here
    client = NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
