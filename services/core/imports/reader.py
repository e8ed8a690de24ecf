"""Streaming readers for CSV and NDJSON: records with the line they start on, in chunks, in
constant memory, from the start of a file or from a checkpoint (a line and its byte offset).

Files are UTF-8; a byte-order mark is skipped. Each line is decoded on its own, so a line that is
not valid UTF-8 fails only the record it belongs to.
"""

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import orjson

BOM = b"\xef\xbb\xbf"
BLOCK = 1 << 20


@dataclass(frozen=True)
class Position:
    """Where reading got to: the last line consumed and the byte just after it."""

    line: int = 0
    offset: int = 0


class Record(NamedTuple):
    line: int
    data: Any
    """CSV cells, or the decoded NDJSON value; None when `problem` says it is unreadable."""
    problem: str | None = None


@dataclass(frozen=True)
class Chunk:
    records: list[Record]
    end: Position


def _encoding_problem(raw: bytes, exc: UnicodeDecodeError) -> str:
    return f"is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start + 1})"


class _Lines:
    """The lines of a binary stream, decoded one by one, counting lines and bytes as it goes.
    Undecodable lines are yielded with replacement characters (so CSV quoting stays in step)
    and noted in `bad` for the record that holds them to fail."""

    def __init__(self, stream: BinaryIO, start: Position) -> None:
        self.stream = stream
        self.line = start.line
        self.offset = start.offset
        self.bad: list[tuple[int, str]] = []

    def __iter__(self) -> Iterator[str]:
        pending = b""
        while True:
            block = self.stream.read(BLOCK)
            if not block:
                break
            if self.offset == 0 and not pending and block.startswith(BOM):
                block = block[len(BOM) :]
                self.offset = len(BOM)
            parts = (pending + block).split(b"\n")
            pending = parts.pop()
            for raw in parts:
                self.line += 1
                self.offset += len(raw) + 1
                try:
                    yield raw.decode() + "\n"
                except UnicodeDecodeError as exc:
                    self.bad.append((self.line, _encoding_problem(raw, exc)))
                    yield raw.decode(errors="replace") + "\n"
        if pending:
            self.line += 1
            self.offset += len(pending)
            try:
                yield pending.decode()
            except UnicodeDecodeError as exc:
                self.bad.append((self.line, _encoding_problem(pending, exc)))
                yield pending.decode(errors="replace")


class CsvReader:
    """Records of a CSV file (comma-separated, `"`-quoted, as spreadsheets write it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: _Lines | None = None

    @property
    def position(self) -> Position:
        """Just after the last record read."""
        lines = self._lines
        return Position() if lines is None else Position(lines.line, lines.offset)

    def header(self) -> tuple[list[str], Position]:
        """The first record and where it ends; a file without one, or with an unreadable
        one, is refused."""
        with self.path.open("rb") as stream:
            lines = _Lines(stream, Position())
            for cells in csv.reader(lines):
                if not cells:
                    continue
                if lines.bad:
                    line, problem = lines.bad[0]
                    raise ValueError(f"the header (line {line}) {problem}")
                return cells, Position(lines.line, lines.offset)
        raise ValueError("the file is empty: it needs a header line")

    def records(self, start: Position) -> Iterator[Record]:
        """Records after `start` (a record boundary)."""
        with self.path.open("rb") as stream:
            stream.seek(start.offset)
            self._lines = lines = _Lines(stream, start)
            rows = csv.reader(lines)
            bad = lines.bad
            while True:
                first = lines.line + 1
                try:
                    cells = next(rows)
                except StopIteration:
                    return
                except csv.Error as exc:
                    bad.clear()
                    yield Record(first, None, f"is not valid CSV: {exc}")
                    continue
                if bad:
                    line, problem = bad[0]
                    bad.clear()
                    yield Record(line, None, problem)
                elif cells:  # blank lines hold no record
                    yield Record(first, cells)


class NdjsonReader:
    """Records of a newline-delimited JSON file: one JSON object per line, blank lines skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._line = 0
        self._offset = 0

    @property
    def position(self) -> Position:
        """Just after the last record read."""
        return Position(self._line, self._offset)

    def first(self) -> Any:
        """The first record's value, for checking its fields before anything is written."""
        for record in self.records(Position()):
            return record.data
        raise ValueError("the file is empty")

    def records(self, start: Position) -> Iterator[Record]:
        with self.path.open("rb") as stream:
            stream.seek(start.offset)
            self._line, self._offset = start.line, start.offset
            pending = b""
            while True:
                block = stream.read(BLOCK)
                if self._offset == 0 and not pending and block.startswith(BOM):
                    block = block[len(BOM) :]
                    self._offset = len(BOM)
                if block:
                    parts = (pending + block).split(b"\n")
                    pending = parts.pop()
                    ends = [len(raw) + 1 for raw in parts]
                else:  # the last line may lack its newline
                    parts, ends = ([pending], [len(pending)]) if pending else ([], [])
                for raw, size in zip(parts, ends, strict=True):
                    self._line += 1
                    self._offset += size
                    if raw.strip():
                        yield _json_record(self._line, raw)
                if not block:
                    return


def _json_record(line: int, raw: bytes) -> Record:
    try:
        return Record(line, orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode()
        except UnicodeDecodeError as bad:
            return Record(line, None, _encoding_problem(raw, bad))
        return Record(line, None, f"is not valid JSON: {exc}")


def chunks(
    records: Iterator[Record], reader: CsvReader | NdjsonReader, size: int
) -> Iterator[Chunk]:
    """Records in lists of `size`, each with the position just after its last record."""
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield Chunk(batch, reader.position)
            batch = []
    if batch:
        yield Chunk(batch, reader.position)
