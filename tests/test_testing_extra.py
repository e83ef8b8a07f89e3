"""``cqrs_lab.testing`` without Hypothesis names the extra that installs it."""

from __future__ import annotations

import subprocess
import sys

SNIPPET = """
import sys
sys.modules["hypothesis"] = None  # as if it were not installed
try:
    import cqrs_lab.testing
except ImportError as exc:
    from cqrs_lab.errors import MissingExtra
    print(type(exc).__name__, isinstance(exc, MissingExtra), exc)
"""


def test_importing_the_strategies_without_hypothesis_names_the_extra() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.startswith("MissingExtra True "), out
    assert "pip install 'cqrs_lab[testing]'" in out, out
