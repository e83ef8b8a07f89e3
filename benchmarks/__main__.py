"""Run every benchmark module and print one JSON line per figure.

Each ``benchmarks/w*.py`` module exposes ``run() -> Iterator[dict]``; each dict is one figure
with at least ``workload``, ``implementation``, ``metric``, ``value`` and ``unit``, plus the
peer it is compared with and the ratio where there is one. ``python -m benchmarks w1`` runs
only the modules whose name starts with ``w1``; ``python -m benchmarks w4_postgres`` only the
PostgreSQL workloads (they start a throwaway cluster of their own: ``make bench`` installs the
server binaries first when they are missing).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    wanted = tuple(argv) or ("w",)
    here = Path(__file__).parent
    names = sorted(
        m.name
        for m in pkgutil.iter_modules([str(here)])
        if re.match(r"w\d+_", m.name) and m.name.startswith(wanted)
    )
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        for figure in module.run():
            print(json.dumps(figure), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
