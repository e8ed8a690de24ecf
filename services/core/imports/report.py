"""The error report written next to an import file: one CSV line per problem (file, line, field,
reason), in line order, with a byte-order mark so spreadsheet programs read it as UTF-8."""

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

BOM = "\ufeff"
COLUMNS = ("file", "line", "field", "reason")

LineProblem = tuple[int, str, str]
"""A line of the input, the field (empty for the whole row) and the reason."""


def report_path(source: Path) -> Path:
    return source.with_name(source.name + ".errors.csv")


class ErrorReport:
    """Appends problems batch by batch; `size` is what a checkpoint records, so a resumed import
    cuts off whatever a batch that never committed had written."""

    def __init__(self, path: Path, source_name: str, keep: int | None) -> None:
        self.path = path
        self.source_name = source_name
        self._file: BinaryIO
        if keep and path.exists() and path.stat().st_size >= keep:
            self._file = path.open("r+b")
            self._file.truncate(keep)
            self._file.seek(keep)
            self.size = keep
        else:
            self._file = path.open("wb")
            self.size = 0
            self._write([COLUMNS], bom=True)

    def write(self, problems: Iterable[LineProblem]) -> int:
        """Write and flush these problems; returns the report's size after them."""
        rows = [(self.source_name, line, field, reason) for line, field, reason in problems]
        if rows:
            self._write(rows)
        return self.size

    def _write(self, rows: Iterable[Iterable[object]], *, bom: bool = False) -> None:
        buffer = io.StringIO()
        if bom:
            buffer.write(BOM)
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        data = buffer.getvalue().encode()
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.size += len(data)

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        """Close and remove the report: nothing failed."""
        self.close()
        self.path.unlink(missing_ok=True)
