"""Field types shared by the resource schemas."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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


class InputModel(BaseModel):
    """Request bodies reject unknown fields, so a typo is an error and not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def require_non_null(model: BaseModel, fields: tuple[str, ...]) -> None:
    """PATCH may clear optional fields with null, but not required ones."""
    for name in fields:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"{name} cannot be null")
