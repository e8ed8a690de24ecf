"""The query parameters of the exports: the filters of the matching list endpoints (without
`limit`, `cursor` and `sort`), and the format, from `format` or the Accept header."""

from typing import Annotated

from fastapi import Header, Query

from services.api.exports.encoding import ExportFormat
from services.core.errors import DomainError, FieldError

ACCEPTED = {
    "text/csv": ExportFormat.csv,
    "text/*": ExportFormat.csv,
    "*/*": ExportFormat.csv,
    "application/x-ndjson": ExportFormat.ndjson,
    "application/*": ExportFormat.ndjson,
}


class NotAcceptable(DomainError):
    status = 406
    title = "Not acceptable"


def export_format(
    format_: Annotated[
        ExportFormat | None,
        Query(
            alias="format",
            description="`csv` or `ndjson`; wins over the Accept header. Default: from Accept "
            "(`text/csv`, `application/x-ndjson`), else `csv`.",
        ),
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ExportFormat:
    if format_ is not None:
        return format_
    if accept is None or not accept.strip():
        return ExportFormat.csv
    chosen = negotiate(accept)
    if chosen is None:
        raise NotAcceptable(
            "Exports are text/csv or application/x-ndjson: accept one of them, or pass format.",
            [FieldError("header.accept", "names neither text/csv nor application/x-ndjson")],
        )
    return chosen


def negotiate(accept: str) -> ExportFormat | None:
    """The format the Accept header prefers: highest q first, then the order given."""
    best: tuple[float, int, ExportFormat] | None = None
    for index, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        format_ = ACCEPTED.get(media.lower())
        if format_ is None:
            continue
        q = _quality(params)
        if q > 0 and (best is None or (-q, index) < (-best[0], best[1])):
            best = (q, index, format_)
    return best[2] if best else None


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0
