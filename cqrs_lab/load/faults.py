"""Faults injected during a load test, at given seconds, through the server's ``POST /faults``.

Each ``--faults`` value is ``AT:ACTION[,ACTION...]`` where AT is seconds after the load
starts and an ACTION is ``crash=NAME[+NAME]``, ``restart=NAME[+NAME]``, a transport fault
probability (``drop=P``, ``duplicate=P``, ``reorder=P``, ``delay=P``, ``crash-rate=P``) or
``clear`` (transport faults off).

>>> parse_fault("10:crash=balances")
FaultStep(at=10.0, body={'crash': ['balances']})
>>> parse_fault("5:duplicate=0.05,drop=0.01").body
{'plan': {'duplicate': 0.05, 'drop': 0.01}}
>>> from cqrs_lab.domains.inventory import domain
>>> try:
...     check_fault_names([parse_fault("1:crash=stok")], domain)
... except ConfigError as exc:
...     print(exc)
--faults 1:crash=stok: domain 'inventory' has no view 'stok'; its views: stock
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cqrs_lab.core import Domain
from cqrs_lab.errors import ConfigError

__all__ = ["FaultStep", "check_fault_names", "parse_fault", "post_fault"]

_PROBS = {
    "drop": "drop",
    "duplicate": "duplicate",
    "reorder": "reorder",
    "delay": "delay",
    "crash-rate": "crash",
}
_HELP = "AT:ACTION with ACTION crash=NAME, restart=NAME, drop|duplicate|reorder|delay=P or clear"


@dataclass(frozen=True)
class FaultStep:
    """Send ``body`` to ``POST /faults`` at ``at`` seconds after the load starts."""

    at: float
    body: dict[str, Any]


def parse_fault(text: str) -> FaultStep:
    """Parse one ``--faults`` value; raises :class:`ConfigError` naming what is wrong."""
    at_text, sep, actions = text.partition(":")
    try:
        at = float(at_text)
    except ValueError:
        at = -1.0
    if not sep or not (math.isfinite(at) and at >= 0):
        raise ConfigError(f"--faults {text!r}: start with seconds >= 0 and a colon; {_HELP}")
    body: dict[str, Any] = {}
    for action in filter(None, (a.strip() for a in actions.split(","))):
        key, _, value = action.partition("=")
        if key in ("crash", "restart"):
            names = [n for n in value.split("+") if n]
            if not names:
                raise ConfigError(f"--faults {text!r}: {key}= needs projection names")
            body.setdefault(key, []).extend(names)
        elif key in _PROBS:
            try:
                p = float(value)
            except ValueError:
                p = -1.0
            if not 0 <= p <= 1:
                raise ConfigError(f"--faults {text!r}: {key} needs a probability in [0, 1]")
            plan = body.setdefault("plan", {})
            if plan is None:
                raise ConfigError(f"--faults {text!r}: 'clear' and {key}= in one step")
            plan[_PROBS[key]] = p
        elif key == "clear" and not value:
            if body.get("plan"):
                raise ConfigError(f"--faults {text!r}: 'clear' and a fault in one step")
            body["plan"] = None
        else:
            raise ConfigError(f"--faults {text!r}: unknown action {action!r}; {_HELP}")
    if not body:
        raise ConfigError(f"--faults {text!r}: no action; {_HELP}")
    return FaultStep(at, body)


def check_fault_names(steps: Iterable[FaultStep], domain: Domain) -> None:
    """Raise :class:`ConfigError` if a step crashes or restarts a view ``domain`` lacks."""
    views = domain.view_names
    for step in steps:
        for action in ("crash", "restart"):
            for name in step.body.get(action, ()):
                if name not in views:
                    raise ConfigError(
                        f"--faults {step.at:g}:{action}={name}: domain {domain.name!r} has no "
                        f"view {name!r}; its views: {', '.join(views)}"
                    )


def post_fault(base_url: str, token: str | None, step: FaultStep, timeout: float = 5.0) -> int:
    """Send one step; returns the HTTP status (the caller records it)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        base_url.rstrip("/") + "/faults", json.dumps(step.body).encode(), headers, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0
