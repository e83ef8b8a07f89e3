"""The README's Python examples run, and print what the README says they print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_examples_run_and_print_what_they_claim() -> None:
    blocks = python_blocks()
    assert blocks
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec", dont_inherit=True), namespace)
        # every `print(...)  # expected` line states its output in the comment after it
        claimed = [
            re.sub(r":.*", "", line.split("#", 1)[1]).strip()
            for line in block.splitlines()
            if line.startswith("print(") and "#" in line
        ]
        printed = out.getvalue().splitlines()
        assert len(printed) == len(claimed)
        for claim, line in zip(claimed, printed, strict=True):
            assert line == claim, (claim, line)
