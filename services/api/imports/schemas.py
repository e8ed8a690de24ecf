from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from services.api.schemas import InputModel
from services.core.imports.service import ImportFormat
from services.core.models.imports import ImportKind


class ImportForm(InputModel):
    """The text fields of `POST /v1/imports`, as sent."""

    kind: ImportKind
    format: ImportFormat | None = None
    recompute: bool = True
    as_of: AwareDatetime | None = None


class ImportParams(BaseModel):
    """What an import job was asked to do: the job's `params`, and what `Idempotency-Key`
    compares between a request and its retry."""

    kind: ImportKind
    filename: str = Field(description="The file's name as uploaded, without any directory.")
    format: ImportFormat
    recompute: bool
    as_of: AwareDatetime | None
    size: int = Field(description="Bytes received.")
    sha256: str = Field(description="SHA-256 of the bytes received, in hex.")


FORM_EXAMPLE = {
    "kind": "interactions",
    "file": "(the bytes of interactions.csv)",
    "recompute": True,
    "as_of": "2026-06-30T16:00:00+08:00",
}

REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "title": "ImportUpload",
                "required": ["kind", "file"],
                "properties": {
                    "kind": {
                        "type": "string",
                        "enum": [k.value for k in ImportKind],
                        "description": "What the file holds. Import channels first, then "
                        "customers, then interactions and tickets.",
                    },
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "CSV with a header line, or NDJSON (one JSON object per "
                        "line), UTF-8; columns as for `retention import` (README, "
                        '"Importing history").',
                    },
                    "format": {
                        "type": "string",
                        "enum": [f.value for f in ImportFormat],
                        "description": "Default: from the file name's extension (`.csv`, "
                        "`.ndjson` or `.jsonl`).",
                    },
                    "recompute": {
                        "type": "boolean",
                        "default": True,
                        "description": "Queue a recompute of the customers written, once the "
                        "import ends.",
                    },
                    "as_of": {
                        "type": "string",
                        "format": "date-time",
                        "description": "ISO 8601 time with a zone the recompute scores as of. "
                        "Default: when the import ends.",
                    },
                },
                "examples": [FORM_EXAMPLE],
            },
            "encoding": {"file": {"contentType": "text/csv, application/x-ndjson"}},
        }
    },
}

ERRORS_EXAMPLE = (
    "file,line,field,reason\n"
    "interactions.csv,3,occurred_at,'2026-03-01' has no time zone: add Z or an offset such as "
    "+08:00\n"
    "interactions.csv,4,customer_external_ref,no customer has this value\n"
)
