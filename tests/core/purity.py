"""The core's purity, read with ``ast``: no clock, no sleep, no unseeded randomness, no random
ids. Time, randomness and ids come in through the engine's clock, rng and id factory."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

IMPURE = frozenset(
    {
        "time.time", "time.time_ns", "time.sleep", "time.monotonic", "time.monotonic_ns",
        "time.perf_counter", "time.perf_counter_ns", "time.process_time",
        "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
        "datetime.date.today", "uuid.uuid1", "uuid.uuid4", "os.urandom", "asyncio.sleep",
        "random.SystemRandom",
    }
)  # fmt: skip
#: whole modules whose every function draws from a global or system generator
IMPURE_MODULES = ("random", "secrets")
#: the one seeded generator class, allowed when given a seed
SEEDED = "random.Random"


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it stands for, from every import in the file."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    out[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _dotted(node: ast.expr, aliases: Mapping[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in aliases:
        return ".".join([aliases[node.id], *reversed(parts)])
    return None


def impurities(path: Path, allowed: Iterable[str] = ()) -> list[str]:
    """Every use in ``path`` of a clock, a sleep, a global random function or a random id
    (called or passed on, as in ``default_factory=uuid.uuid4``), and every ``random.Random()``
    without a seed; names in ``allowed`` are exempt."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    aliases = _aliases(tree)
    allowed = set(allowed)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and not (node.args or node.keywords)
            and _dotted(node.func, aliases) == SEEDED
        ):
            found.append((node.lineno, f"{SEEDED}() without a seed"))
        if not isinstance(node, ast.Attribute | ast.Name):
            continue
        name = _dotted(node, aliases)
        if name is None or name in allowed or name == SEEDED:
            continue
        if name in IMPURE or (name.split(".")[0] in IMPURE_MODULES and name.count(".") == 1):
            found.append((node.lineno, f"uses {name}"))
    return [f"{path.as_posix()}:{line}: {what}" for line, what in sorted(found)]
