"""HTML for notebooks: result tables with the rows that break a promise highlighted.

>>> import pandas as pd
>>> html = frame_html(pd.DataFrame({"slo": ["a", "b"], "met": [True, False]}), "SLOs", bad="met")
>>> '#fde2e1' in html
True
"""

from __future__ import annotations

import argparse
import html as _html
import os
import sys
from typing import Any

import pandas as pd

__all__ = ["add_no_plots", "frame_html", "section_html", "show_progress"]

_BAD = "background:#fde2e1"
_GOOD = "background:#e6f4ea"


def frame_html(
    df: pd.DataFrame, title: str, *, bad: str | None = None, limit: int = 30, index: bool = False
) -> str:
    """``df`` as an HTML table under ``title``; a boolean column ``bad`` marks failing rows
    (False = failing) in red and passing rows in green."""
    if df is None or not len(df):
        return ""
    shown = df.head(limit)
    styled = shown.style.format(precision=4)
    if not index:
        styled = styled.hide(axis="index")
    if bad is not None and bad in shown.columns:
        flags = shown[bad].astype(bool)

        def colour(row: Any) -> list[str]:
            return [(_GOOD if flags.loc[row.name] else _BAD)] * len(row)

        styled = styled.apply(colour, axis=1)
    more = f"<p><i>{len(df) - limit} more rows</i></p>" if len(df) > limit else ""
    return section_html(title, styled.to_html() + more)


def section_html(title: str, body: str) -> str:
    return f"<div><h4>{_html.escape(title)}</h4>{body}</div>"


def show_progress() -> bool:
    """Progress bars on a terminal or in a notebook (Jupyter's stderr is no TTY); never in CI."""
    if os.environ.get("CI"):
        return False
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def add_no_plots(p: argparse.ArgumentParser) -> None:
    """``--no-plots``, the one spelling every command uses (``--no-plot`` is a hidden alias)."""
    p.add_argument("--no-plots", action="store_true", help="write tables only, no PNG plots")
    p.add_argument("--no-plot", dest="no_plots", action="store_true", help=argparse.SUPPRESS)
