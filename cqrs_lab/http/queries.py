"""A domain's query classes as query-string parameters: ``GET /queries/GetStock?sku=sku-1``.

:func:`query_model` reads the query dataclass's fields and annotations and builds a strict
pydantic model of its query-string parameters:

- a ``str`` field follows the one :data:`~cqrs_lab.http.schemas.Id` rule (a query names
  what it reads by its key), unless the query class lists it in an optional
  ``text_fields: ClassVar[tuple[str, ...]]`` (free text, at most 200 characters);
- an ``int`` field takes ASCII digits only, with an optional minus sign (no ``²``, no
  ``1_000``, no spaces), within ±10**12; ``float`` likewise with a decimal point; ``bool``
  is ``true`` or ``false``;
- a field with a default (or ``X | None``) is optional; unknown parameters are refused;
- an ``int`` or ``float`` field the query class lists in an optional ``bounds:
  ClassVar[dict[str, tuple[low, high]]]`` is refused outside them (inclusive).

``min_position``, ``wait`` and ``stale`` are the read-your-writes parameters every query
takes (:mod:`cqrs_lab.http.reads`), so a query may not have fields of those names.

>>> from cqrs_lab.domains.inventory import GetReservation
>>> model = query_model(GetReservation)
>>> model.parse({"order_id": "o-1", "sku": "sku-1", "wait": "1"})
GetReservation(order_id='o-1', sku='sku-1')
>>> from cqrs_lab.domains.bank import GetStatement
>>> statement = query_model(GetStatement)
>>> statement.parse({"account_id": "a1", "limit": "2"})
GetStatement(account_id='a1', limit=2)
>>> from cqrs_lab.errors import Problem
>>> try:
...     statement.parse({"account_id": "a1", "limit": "²"})
... except Problem as p:
...     print(p.status, p.detail)
422 query parameter limit: Value error, a whole number in ASCII digits (0-9)
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from cqrs_lab.errors import ConfigError
from cqrs_lab.http.problems import invalid_request
from cqrs_lab.http.schemas import ID_MAX, ID_PATTERN, Id

__all__ = ["RESERVED", "QueryField", "QueryModel", "query_model"]

#: the read-your-writes parameters every query takes, never a query's own fields
RESERVED = frozenset({"min_position", "wait", "stale"})
_INT = re.compile(r"-?[0-9]{1,15}")
_FLOAT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")
_BOUND = 10**12


def _whole(raw: Any) -> Any:
    if isinstance(raw, str):
        if not _INT.fullmatch(raw):
            raise ValueError("a whole number in ASCII digits (0-9)")
        return int(raw)
    return raw


def _decimal(raw: Any) -> Any:
    if isinstance(raw, str):
        if not _FLOAT.fullmatch(raw):
            raise ValueError("a number in ASCII digits (0-9), with an optional decimal point")
        return float(raw)
    return raw


def _flag(raw: Any) -> Any:
    if isinstance(raw, str):
        if raw not in ("true", "false"):
            raise ValueError("true or false")
        return raw == "true"
    return raw


_TYPES: dict[str, Any] = {
    "id": Id,
    "text": Annotated[str, Field(max_length=200)],
    "int": Annotated[int, BeforeValidator(_whole), Field(ge=-_BOUND, le=_BOUND)],
    "float": Annotated[float, BeforeValidator(_decimal), Field(ge=-_BOUND, le=_BOUND)],
    "bool": Annotated[bool, BeforeValidator(_flag)],
}
_SCHEMAS: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "minLength": 1, "maxLength": ID_MAX, "pattern": ID_PATTERN},
    "text": {"type": "string", "maxLength": 200},
    "int": {"type": "integer", "minimum": -_BOUND, "maximum": _BOUND},
    "float": {"type": "number", "minimum": -_BOUND, "maximum": _BOUND},
    "bool": {"type": "boolean"},
}


@dataclass(frozen=True)
class QueryField:
    """One query-string parameter: its ``kind`` (id, text, int, float, bool) and whether it
    must be given."""

    name: str
    kind: str
    required: bool
    bounds: tuple[float, float] | None = None  # inclusive, for int and float

    @property
    def schema(self) -> dict[str, Any]:
        """Its OpenAPI schema."""
        schema = dict(_SCHEMAS[self.kind])
        if self.bounds is not None:
            schema["minimum"], schema["maximum"] = self.bounds
        return schema


@dataclass(frozen=True)
class QueryModel:
    """The query class ``query_type``, its parameters and the pydantic model that checks
    them."""

    query_type: type
    fields: tuple[QueryField, ...]
    model: type[BaseModel]

    def parse(self, params: Mapping[str, str]) -> Any:
        """The query the parameters ask (the reserved ones are skipped); a 422
        :class:`~cqrs_lab.errors.Problem` naming the parameter at fault otherwise (also one
        given twice: which one was meant is not ours to guess)."""
        items = params.multi_items() if hasattr(params, "multi_items") else list(params.items())
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise invalid_request(
                    [{"loc": ("query", key), "msg": "given twice; send it once", "type": "twice"}]
                )
            seen.add(key)
        raw = {k: v for k, v in params.items() if k not in RESERVED}
        try:
            values = self.model.model_validate(raw)
        except ValidationError as exc:
            errors = [{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]
            raise invalid_request(errors) from None
        return self.query_type(**values.model_dump())


def query_model(cls: type) -> QueryModel:
    """The query-string model of the query dataclass ``cls`` (see the module docstring)."""
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"query {cls.__name__}: declare it as a dataclass to serve it")
    hints = typing.get_type_hints(cls)
    text = set(getattr(cls, "text_fields", ()))
    own = {f.name for f in dataclasses.fields(cls)}  # a field named bounds is a field
    bounds: dict[str, tuple[float, float]] = (
        {} if "bounds" in own else dict(getattr(cls, "bounds", {}))
    )
    fields: list[QueryField] = []
    model: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in RESERVED:
            raise ConfigError(
                f"query {cls.__name__}: field {f.name!r} clashes with the read-your-writes "
                f"parameter of that name; rename it (reserved: {sorted(RESERVED)})"
            )
        base, optional = _unwrap(hints[f.name])
        kind = _kind(cls, f.name, base, text)
        has_default = f.default is not dataclasses.MISSING or (
            f.default_factory is not dataclasses.MISSING
        )
        default: Any = ... if not has_default else _default(f)
        bound = bounds.pop(f.name, None)
        typed = _TYPES[kind] if bound is None else _bounded(cls, f.name, kind, bound)
        annotation = typed | None if optional else typed
        model[f.name] = (annotation, None if optional and not has_default else default)
        fields.append(QueryField(f.name, kind, not has_default and not optional, bound))
    if bounds:
        raise ConfigError(f"query {cls.__name__}: bounds name no field: {sorted(bounds)}")
    config = ConfigDict(extra="forbid", strict=True)
    built = create_model(f"{cls.__name__}Params", __config__=config, **model)
    return QueryModel(cls, tuple(fields), built)


def _bounded(cls: type, name: str, kind: str, bound: tuple[float, float]) -> Any:
    """The ``int`` or ``float`` parameter type of field ``name``, within ``bound``."""
    low, high = bound
    if kind not in ("int", "float") or not -_BOUND <= low <= high <= _BOUND:
        raise ConfigError(
            f"query {cls.__name__}: bounds[{name!r}] = {bound!r}; give (low, high) with "
            f"low <= high, within ±10**12, for an int or float field"
        )
    parse = _whole if kind == "int" else _decimal
    base = int if kind == "int" else float
    return Annotated[base, BeforeValidator(parse), Field(ge=low, le=high)]


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    factory: Any = f.default_factory
    return factory()


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); ``X`` -> (X, False)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(hint)):
            return args[0], True
    return hint, False


def _kind(cls: type, name: str, base: Any, text: set[str]) -> str:
    if base is str:
        return "text" if name in text else "id"
    if base is bool:  # before int: bool is an int
        return "bool"
    if base is int:
        return "int"
    if base is float:
        return "float"
    raise ConfigError(
        f"query {cls.__name__}: field {name!r} is {base!r}; a query served over HTTP takes "
        "str, int, float or bool fields (optionally | None)"
    )
