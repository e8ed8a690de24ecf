"""Field types shared by the resource schemas."""

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.core import jsontext

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Tags = Annotated[list[Tag], Field(max_length=50, description="Free labels, e.g. `vip`, `华东`.")]
Attributes = Annotated[
    dict[str, Any], Field(description="Custom attributes: any JSON object your systems need.")
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Ref = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(description="Your own identifier for the record (unique)."),
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


# `\u0000` in serialised JSON that is not itself an escaped backslash followed by `u0000`
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def has_nul(value: Any) -> bool:
    """Whether a string, or any string inside a JSON value, holds U+0000."""
    if isinstance(value, str):
        return "\x00" in value
    dumped = jsontext.dumps(value, default=str)
    return b"\\u0000" in dumped and _NUL_ESCAPE.search(dumped) is not None


class InputModel(BaseModel):
    """Request bodies reject unknown fields, so a typo is an error and not silently dropped."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text and jsonb cannot store U+0000: refuse it here, naming the field,
        # rather than let the database fail the whole write.
        if value is not None and has_nul(value):
            raise ValueError("contains a NUL character")
        return value


class BatchInput(BaseModel):
    """A batch envelope: its raw items are validated one by one, each reporting its own errors."""

    model_config = ConfigDict(extra="forbid")


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def require_non_null(model: BaseModel, fields: tuple[str, ...]) -> None:
    """PATCH may clear optional fields with null, but not required ones."""
    for name in fields:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"{name} cannot be null")
