"""CSV and NDJSON, a chunk of rows at a time.

CSV: RFC 4180 with a header row; an empty cell is null; times are ISO 8601 in UTC (`Z`); tags,
attributes and other structured values are JSON text (`["vip","华东"]`), so a `|` or a comma
inside a tag survives. NDJSON: one JSON object per line with the CSV's columns as keys and
typed values, as the API shows them (amounts as decimal strings).
"""

import csv
import io
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

import orjson

_JSON = orjson.OPT_UTC_Z


class ExportFormat(StrEnum):
    csv = "csv"
    ndjson = "ndjson"


MEDIA_TYPES = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.ndjson: "application/x-ndjson",
}
SUFFIXES = {".csv": ExportFormat.csv, ".ndjson": ExportFormat.ndjson, ".jsonl": ExportFormat.ndjson}


Field = tuple[str, type | None]
"""A column's name and the Python type of its values (None when the type does not say)."""


class Encoder(Protocol):
    def header(self) -> bytes: ...

    def rows(self, rows: Sequence[Sequence[Any]]) -> bytes: ...


def encoder(format_: ExportFormat, fields: Sequence[Field]) -> Encoder:
    return CsvEncoder(fields) if format_ is ExportFormat.csv else NdjsonEncoder(fields)


class CsvEncoder:
    """Cells are converted by a function chosen once per column from its type; the writer
    writes null as an empty cell and the text of the rest (text, numbers, ids, days)."""

    def __init__(self, fields: Sequence[Field]) -> None:
        self.columns = tuple(name for name, _ in fields)
        self.converters = tuple(
            (index, convert)
            for index, (_, python_type) in enumerate(fields)
            if (convert := _CONVERTERS.get(python_type)) is not None
        )

    def header(self) -> bytes:
        return _csv([self.columns])

    def rows(self, rows: Sequence[Sequence[Any]]) -> bytes:
        records = []
        for row in rows:
            cells = list(row)
            for index, convert in self.converters:
                if cells[index] is not None:
                    cells[index] = convert(cells[index])
            records.append(cells)
        return _csv(records)


class NdjsonEncoder:
    def __init__(self, fields: Sequence[Field]) -> None:
        self.columns = tuple(name for name, _ in fields)

    def header(self) -> bytes:
        return b""

    def rows(self, rows: Sequence[Sequence[Any]]) -> bytes:
        columns = self.columns
        return b"".join(_json(dict(zip(columns, row, strict=True))) + b"\n" for row in rows)


def _csv(records: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(records)
    return buffer.getvalue().encode()


def _time(value: datetime) -> str:
    return orjson.dumps(value, option=_JSON)[1:-1].decode()


def _json(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default, option=_JSON)
    except TypeError:
        # orjson stops at 64-bit integers; JSON columns may hold bigger ones.
        text = json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":"))
        return text.encode()


def _json_text(value: Any) -> str:
    return _json(value).decode()


def _bool(value: bool) -> str:
    return "true" if value else "false"


_CONVERTERS: dict[type | None, Callable[[Any], str]] = {
    datetime: _time,
    list: _json_text,
    dict: _json_text,
    object: _json_text,  # a JSON column: any JSON value
    bool: _bool,
}


def _default(value: Any) -> str:
    """What orjson leaves: decimals (as the API shows them, strings) and asyncpg's own UUID."""
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return _time(value)
    raise TypeError(f"{type(value).__name__} is not exportable")
