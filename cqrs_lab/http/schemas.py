"""Request and response bodies: strict pydantic models, unknown fields refused.

Command bodies are parsed with ``model_validate_json`` (one pass in pydantic-core), and the
same models document the API in OpenAPI through :func:`body_schema`.

>>> AmountBody.model_validate_json(b'{"amount": 5}').amount
5
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, create_model

from cqrs_lab.core import Command

__all__ = [
    "AccountOut",
    "AmountBody",
    "CommandOut",
    "OpenAccountBody",
    "StatementOut",
    "TransferBody",
    "body_schema",
    "command_model",
]

Id = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Amount = Annotated[StrictInt, Field(gt=0, le=10**12)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OpenAccountBody(_Strict):
    account_id: Id
    owner: Annotated[StrictStr, Field(max_length=200)] = ""
    opening_balance: Annotated[StrictInt, Field(ge=0, le=10**12)] = 0


class AmountBody(_Strict):
    amount: Amount


class TransferBody(_Strict):
    transfer_id: Id
    source: Id
    target: Id
    amount: Amount


class CommandOut(BaseModel):
    """What an accepted command answers; ``position`` is also the consistency token."""

    command_id: str
    stream_id: str
    stream_version: int
    position: int
    events: list[str]
    correlation_id: str


class AccountOut(BaseModel):
    account_id: str
    owner: str
    open: bool
    balance: int


class StatementLine(BaseModel):
    version: int
    position: int
    kind: str
    amount: int
    transfer_id: str | None
    at: float


class StatementOut(BaseModel):
    account_id: str
    lines: list[StatementLine]


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """An ``openapi_extra`` for a route that parses ``model`` itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def command_model(cls: type[Command]) -> type[BaseModel]:
    """A strict body model with the fields of the command dataclass ``cls``."""
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        default = ... if f.default is dataclasses.MISSING else f.default
        annotation = _STRICT.get(str(f.type), Any)
        fields[f.name] = (annotation, default)
    return create_model(
        f"{cls.__name__}Body", __config__=ConfigDict(extra="forbid", strict=True), **fields
    )


_STRICT: dict[str, Any] = {
    "str": Annotated[StrictStr, Field(max_length=200)],
    "int": Annotated[StrictInt, Field(ge=-(10**12), le=10**12)],
    "str | None": Annotated[StrictStr, Field(max_length=200)] | None,
    "int | None": Annotated[StrictInt, Field(ge=-(10**12), le=10**12)] | None,
    "bool": bool,
    "float": float,
}
