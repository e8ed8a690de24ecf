"""Reports as CSV: one line per row of the report, each figure as value, previous and change."""

import csv
import io
from collections.abc import Sequence
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

from services.api.reports.schemas import Figure

CSV = "text/csv"


def wants_csv(request: Request) -> bool:
    return CSV in request.headers.get("accept", "")


def _figure(out: dict[str, Any], name: str, figure: Figure) -> None:
    out[name] = figure.value
    out[f"{name}_previous"] = figure.previous
    out[f"{name}_change"] = figure.change


def flatten(row: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in row:
        if isinstance(value, Figure):
            _figure(out, name, value)
        elif isinstance(value, BaseModel):
            out |= flatten(value)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                _figure(out, f"{name}_{index}", item)
        else:
            out[name] = value
    return out


def csv_response(rows: Sequence[BaseModel], name: str) -> Response:
    lines = [flatten(row) for row in rows]
    columns: dict[str, None] = {}
    for line in lines:
        columns |= dict.fromkeys(line)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(lines)
    return Response(
        buffer.getvalue(),
        media_type=f"{CSV}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def answer(request: Request, report: BaseModel, rows: Sequence[BaseModel], name: str) -> Any:
    """The report as JSON, or its rows as CSV when the client accepts text/csv."""
    return csv_response(rows, name) if wants_csv(request) else report
