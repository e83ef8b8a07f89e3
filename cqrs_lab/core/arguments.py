"""Checks of the arguments of the core's constructors and entry points (never of a
per-event loop): a finite real or a whole number in range, numpy's numbers too, never a
bool or NaN; a flag, True or False and nothing merely truthy; else a
:class:`~cqrs_lab.errors.ConfigError` naming the argument and what it takes.
"""

from __future__ import annotations

import math
import numbers

from cqrs_lab.errors import ConfigError

__all__ = ["check_bool", "check_real", "check_whole", "is_real"]


def _label(where: str, name: str, value: object) -> str:
    return f"{where}({name}={value!r})" if where else f"{name}={value!r}"


def check_real(
    value: object,
    name: str,
    allowed: str,
    *,
    where: str = "",
    low: float = 0.0,
    high: float = math.inf,
) -> float:
    """``value`` as a float if it is a finite real number (numpy's too, never a bool or NaN)
    from ``low`` to ``high``; else a :class:`ConfigError` "``where(name=value): pass allowed``".

    The argument checks of the core's constructors and entry points (never a per-event loop).

    >>> check_real("0.5", "drop", "a probability, a number from 0 to 1", where="FaultPlan")
    Traceback (most recent call last):
    ...
    cqrs_lab.errors.ConfigError: FaultPlan(drop='0.5'): pass a probability, a number from 0 to 1
    """
    if is_real(value, low, high):
        return float(value)  # type: ignore[arg-type]
    raise ConfigError(f"{_label(where, name, value)}: pass {allowed}")


def is_real(value: object, low: float = 0.0, high: float = math.inf) -> bool:
    """Whether ``value`` is a finite real number (numpy's too, never a bool or NaN) from
    ``low`` to ``high``: what :func:`check_real` accepts."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    number = float(value)
    return low <= number <= high and math.isfinite(number)


def check_whole(value: object, name: str, allowed: str, *, where: str = "", low: float = 0) -> int:
    """``value`` as an int if it is a whole number (numpy's too, never a bool) >= ``low``;
    else a :class:`ConfigError` as :func:`check_real` raises."""
    if not isinstance(value, bool) and isinstance(value, numbers.Integral) and int(value) >= low:
        return int(value)
    raise ConfigError(f"{_label(where, name, value)}: pass {allowed}")


def check_bool(value: object, name: str, allowed: str, *, where: str = "") -> bool:
    """``value`` as a bool if it is True or False (numpy's ``bool_`` too); else a
    :class:`ConfigError` as :func:`check_real` raises: a string such as ``'no'`` is true to
    ``if``, so it is never taken for a flag.

    >>> check_bool("no", "statements", "True or False", where="install")
    Traceback (most recent call last):
    ...
    cqrs_lab.errors.ConfigError: install(statements='no'): pass True or False
    """
    kind = type(value)
    if kind is bool or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")):
        return bool(value)
    raise ConfigError(f"{_label(where, name, value)}: pass {allowed}")
