"""Request and response bodies: strict pydantic models, unknown fields refused.

Command bodies are read by :func:`read_json_body` (JSON only) and parsed by
:func:`parse_body` with ``model_validate_json`` (one pass in pydantic-core); the same models
document the API in OpenAPI through :func:`body_schema`.

>>> from cqrs_lab.domains.bank import Deposit
>>> command_model(Deposit).model_validate_json(b'{"account_id": "a1", "amount": 5}').amount
5

Identifiers follow one rule everywhere, in bodies (:data:`Id`) and in paths (:data:`PathId`):

>>> from pydantic import TypeAdapter
>>> [_ok(TypeAdapter(Id), v) for v in ("a-1", "t.2:x", "..", "", "a b", "x" * 65)]
[True, True, False, False, False, False]
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Path
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    create_model,
)
from starlette.requests import Request

from cqrs_lab.core import Command
from cqrs_lab.errors import ConfigError
from cqrs_lab.http.problems import Problem, invalid_request

__all__ = [
    "ID_PATTERN",
    "INTEGRAL",
    "CommandOut",
    "Id",
    "PathId",
    "StrictBody",
    "body_schema",
    "command_model",
    "is_json",
    "parse_body",
    "read_json_body",
]

#: The one rule for identifiers (accounts, transfers, any ``*_id`` of a command), in bodies
#: and in paths: 1 to 64 of ``[A-Za-z0-9_.:-]``, at least one of them not a dot, so that the
#: path segments ``.`` and ``..`` are refused too. Written without look-around, so that
#: pydantic-core's regex engine and OpenAPI clients (schemathesis) can both use it.
ID_PATTERN = r"^[A-Za-z0-9_.:-]*[A-Za-z0-9_:-][A-Za-z0-9_.:-]*$"
ID_MAX = 64
_ID_RULE = "1 to 64 letters, digits and _ . : - (not only dots)"
Id = Annotated[
    StrictStr, Field(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN, description=_ID_RULE)
]
#: :data:`Id` as a path parameter: the route table validates it, the OpenAPI document shows it
PathId = Annotated[
    str, Path(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN, description=_ID_RULE)
]


def _integral(raw: Any) -> Any:
    """An integer-valued float (``1.0``, as some JSON encoders write 1) as the int; any
    other fraction refused, naming the field."""
    if isinstance(raw, float):
        if not raw.is_integer():
            raise ValueError(_FRACTION)
        return int(raw)
    return raw


#: put last in ``Annotated[StrictInt, Field(...), INTEGRAL]``: an integer field of a body
#: then also takes a float with no fraction (``5.0``) and is still documented as
#: ``{"type": "integer", "minimum": ..., "maximum": ...}``
#:
#: >>> field = TypeAdapter(Annotated[StrictInt, Field(ge=0, le=10), INTEGRAL])
#: >>> field.validate_json(b"5.0"), _ok(field, "5.5"), field.json_schema()["maximum"]
#: (5, False, 10)
INTEGRAL = BeforeValidator(_integral)


def _ok(adapter: TypeAdapter[Any], value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


class StrictBody(BaseModel):
    """A request body: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class CommandOut(BaseModel):
    """What an accepted command answers; ``position`` is also the consistency token."""

    command_id: str
    stream_id: str
    stream_version: int
    position: int
    events: list[str]
    correlation_id: str


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """An ``openapi_extra`` for a route that parses ``model`` itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def command_model(cls: type[Command], id_fields: Iterable[str] = ()) -> type[BaseModel]:
    """A strict body model with the fields of the command dataclass ``cls``.

    Identifier fields follow the :data:`Id` rule, as on the dedicated routes. A field is an
    identifier when its name ends in ``_id`` (the convention of the domains here, so a new
    command needs no declaration), when the command class lists it in an optional
    ``id_fields: ClassVar[tuple[str, ...]]`` (for names the convention misses, such as a
    transfer's ``source`` and ``target``; read with ``getattr``, so the core's ``Command``
    carries no HTTP notion), or when the caller names it in ``id_fields``.

    >>> from cqrs_lab.domains.bank import RequestTransfer
    >>> body = command_model(RequestTransfer, id_fields=("source", "target"))
    >>> body.model_json_schema()["properties"]["source"]["maxLength"]
    64
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    ids = {f.name for f in fields if f.name.endswith("_id")}
    ids.update(getattr(cls, "id_fields", ()), id_fields)
    text = {f.name for f in fields if _type_name(f) in ("str", "str | None")}
    if not ids <= text:
        raise ConfigError(
            f"{cls.__name__}: id_fields names {sorted(ids - text)}, which are not str fields; "
            f"list only fields that hold identifiers"
        )
    model: dict[str, Any] = {}
    for f in fields:
        default = ... if f.default is dataclasses.MISSING else f.default
        if f.name in ids:
            annotation: Any = Id | None if _type_name(f) == "str | None" else Id
        else:
            annotation = _STRICT.get(_type_name(f), Any)
        model[f.name] = (annotation, default)
    return create_model(
        f"{cls.__name__}Body", __config__=ConfigDict(extra="forbid", strict=True), **model
    )


def _type_name(f: dataclasses.Field[Any]) -> str:
    """``"str"`` for ``str`` written as a class or as a string (postponed annotations)."""
    t = f.type
    return t if isinstance(t, str) else t.__name__ if isinstance(t, type) else str(t)


_STRICT: dict[str, Any] = {
    "str": Annotated[StrictStr, Field(max_length=200)],
    "int": Annotated[StrictInt, Field(ge=-(10**12), le=10**12), INTEGRAL],
    "str | None": Annotated[StrictStr, Field(max_length=200)] | None,
    "int | None": Annotated[StrictInt, Field(ge=-(10**12), le=10**12), INTEGRAL] | None,
    "bool": bool,
    "float": float,
}


def is_json(content_type: str) -> bool:
    """``application/json`` or ``application/<anything>+json``, with any parameters.

    >>> is_json("application/json; charset=utf-8"), is_json("text/plain")
    (True, False)
    """
    kind, _, sub = content_type.partition(";")[0].strip().lower().partition("/")
    return kind == "application" and (sub == "json" or (sub.endswith("+json") and sub != "+json"))


async def read_json_body(request: Request, limit: int) -> bytes:
    """A command's body: refused with 415 unless it is JSON, with 413 past ``limit`` bytes.

    Asking for ``Content-Type: application/json`` keeps a web page from posting a command
    across origins without a CORS preflight: the content types a browser sends freely
    (``text/plain``, forms, or none with a body) are refused before the body is parsed.
    """
    headers = request.headers
    content_type = headers.get("content-type")
    if content_type is not None and not is_json(content_type):
        raise _unsupported(f"Content-Type {content_type[:100]!r}")
    if content_type is not None and len(headers.getlist("content-type")) > 1:
        raise _unsupported("a body with two Content-Type headers")
    encoding = headers.get("content-encoding")
    if encoding is not None and encoding.strip().lower() != "identity":
        raise _unsupported(f"Content-Encoding {encoding[:40]!r} (send the body uncompressed)")
    charset = content_type and _charset(content_type)
    if charset and charset not in ("utf-8", "utf8"):  # it would be read as UTF-8 all the same
        raise _unsupported(f"charset {charset[:40]!r} (JSON between systems is UTF-8, RFC 8259)")
    chunks: list[bytes] = []
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise Problem(413, "request body too large", f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    if content_type is None and seen:
        raise _unsupported("a body without Content-Type")
    return b"".join(chunks)


def _charset(content_type: str) -> str | None:
    """The ``charset`` parameter of a Content-Type, lower case and unquoted (None if absent).

    >>> _charset('application/json; Charset="UTF-16"'), _charset("application/json")
    ('utf-16', None)
    """
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def _unsupported(what: str) -> Problem:
    return Problem(
        415,
        "unsupported media type",
        f"{what} is not accepted: send the command as JSON with Content-Type: application/json",
    )


def parse_body(model: type[BaseModel], body: bytes) -> Any:
    """``body`` parsed as ``model``; a 400 or 422 :class:`Problem` naming the field at fault.

    A whole-number field sent a fraction that a float cannot hold (``0.99999999999999999``,
    ``2.00000000000000001``, ``1e-400``: JSON parsers read them as 1.0, 2.0 and 0.0) is
    refused like any other fraction, not rounded into an amount the client did not send.
    """
    if not body:
        raise Problem(400, "missing body", "send a JSON object as the request body")
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request(exc.errors()) from None
    if _FRACTION_OR_EXPONENT.search(body) is not None:  # a number with a fraction or exponent
        rounded = [k for k in _rounded_to_whole(body) if type(getattr(parsed, k, None)) is int]
        if rounded:
            errors = [{"loc": (k,), "msg": _FRACTION, "type": "fraction"} for k in rounded]
            raise invalid_request(errors)
    return parsed


_FRACTION_OR_EXPONENT = re.compile(rb"\d[.eE]")
_FRACTION = "a whole number such as 3 or 3.0, not a fraction"


def _rounded_to_whole(body: bytes) -> list[str]:
    """The top-level keys of ``body`` whose number has a fraction (exactly, as written) that
    a float rounds away.

    >>> _rounded_to_whole(b'{"a": 0.99999999999999999, "b": 2.5, "c": 3.0, "d": 1e-400}')
    ['a', 'd']
    """
    try:
        doc = json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError):
        return []
    if not isinstance(doc, dict):
        return []
    return [
        key
        for key, value in doc.items()
        if isinstance(value, Decimal)
        and value.is_finite()
        and value != value.to_integral_value()
        and float(value).is_integer()
    ]
