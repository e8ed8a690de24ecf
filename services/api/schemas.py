"""Field types shared by the resource schemas."""

import re
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

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


class PatchModel(InputModel):
    """A PATCH body: omitted fields keep their value and `null` clears an optional one. The
    fields in NON_NULL may be omitted but not cleared: their `null` is refused naming the field,
    and their schema does not offer it."""

    NON_NULL: ClassVar[tuple[str, ...]] = ()

    @field_validator("*", mode="after")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        # Validators run only on fields the body names, so None here is an explicit null.
        if value is None and info.field_name in cls.NON_NULL:
            raise ValueError("cannot be null; omit the field to keep its value")
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        properties = handler.resolve_ref_schema(schema)["properties"]
        for name in cls.NON_NULL:
            _without_null(properties[name])
        return schema


def _without_null(field: dict[str, Any]) -> None:
    options = [option for option in field.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        field.update(options[0])
    elif options:
        field["anyOf"] = options
    if "default" in field and field["default"] is None:
        del field["default"]
