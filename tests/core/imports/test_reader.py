"""Streaming readers: the line each record starts on, unreadable lines, and resuming from any
checkpoint with exactly the records after it."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.imports.reader import CsvReader, NdjsonReader, Position, Record, chunks


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_csv_records_start_on_their_line(tmp_path: Path) -> None:
    data = (
        '\ufeffa,b\r\n1,one\r\n\r\n2,"two\r\nlines, with a comma"\r\n3,"say ""hi"""\r\n4,四'
    ).encode()
    path = _write(tmp_path, "x.csv", data)
    reader = CsvReader(path)
    names, start = reader.header()
    assert names == ["a", "b"]
    assert start == Position(1, len("\ufeffa,b\r\n".encode()))
    records = list(reader.records(start))
    assert records == [
        Record(2, ["1", "one"]),
        Record(4, ["2", "two\r\nlines, with a comma"]),
        Record(6, ["3", 'say "hi"']),
        Record(7, ["4", "四"]),
    ]
    assert reader.position == Position(7, len(data))


def test_a_line_that_is_not_utf8_fails_alone(tmp_path: Path) -> None:
    data = b"a,b\n1,ok\n2,caf\xe9\n3,\xe5\x90\x8d\n"
    reader = CsvReader(_write(tmp_path, "x.csv", data))
    _, start = reader.header()
    records = list(reader.records(start))
    assert records == [
        Record(2, ["1", "ok"]),
        Record(3, None, "is not valid UTF-8 (byte 0xe9 at position 6)"),
        Record(4, ["3", "名"]),
    ]


def test_a_bad_line_inside_a_quoted_field_fails_its_record(tmp_path: Path) -> None:
    data = b'a,b\n1,"x\n\xff"\n2,y\n'
    reader = CsvReader(_write(tmp_path, "x.csv", data))
    _, start = reader.header()
    assert list(reader.records(start)) == [
        Record(3, None, "is not valid UTF-8 (byte 0xff at position 1)"),
        Record(4, ["2", "y"]),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "the file is empty"), (b"\n\n", "the file is empty"), (b"a,\xff\n1,2\n", "header")],
)
def test_a_file_without_a_readable_header_is_refused(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CsvReader(_write(tmp_path, "x.csv", data)).header()


def test_ndjson_lines(tmp_path: Path) -> None:
    data = b'\xef\xbb\xbf{"a": 1}\n\n  \r\n{"a": "\xe5\x90\x8d"}\n{"a": \n{"a": "\xff"}\n{"a": 5}'
    reader = NdjsonReader(_write(tmp_path, "x.ndjson", data))
    records = list(reader.records(Position()))
    assert [(r.line, r.data) for r in records] == [
        (1, {"a": 1}),
        (4, {"a": "名"}),
        (5, None),
        (6, None),
        (7, {"a": 5}),
    ]
    assert records[2].problem is not None
    assert records[2].problem.startswith("is not valid JSON")
    assert records[3].problem == "is not valid UTF-8 (byte 0xff at position 8)"
    assert reader.position == Position(7, len(data))


def _lines(rows: list[str], multiline_every: int) -> bytes:
    out = ["id,text\n"]
    for n, text in enumerate(rows):
        quoted = f'"{text}\nmore"' if multiline_every and n % multiline_every == 0 else text
        out.append(f"{n},{quoted}\n")
    return "".join(out).encode()


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.text(alphabet="abc名字 ", max_size=8), min_size=0, max_size=30),
    size=st.integers(min_value=1, max_value=7),
    multiline_every=st.integers(min_value=0, max_value=4),
    ndjson=st.booleans(),
)
def test_resuming_at_any_chunk_end_reads_exactly_the_rest(
    tmp_path: Path, rows: list[str], size: int, multiline_every: int, ndjson: bool
) -> None:
    if ndjson:
        data = "".join(f'{{"id": {n}, "t": "{t}"}}\n' for n, t in enumerate(rows)).encode()
        path = _write(tmp_path, "x.ndjson", data)
        reader: CsvReader | NdjsonReader = NdjsonReader(path)
        start = Position()
    else:
        path = _write(tmp_path, "x.csv", _lines(rows, multiline_every))
        reader = CsvReader(path)
        _, start = reader.header()
    everything = list(reader.records(start))
    assert len(everything) == len(rows)
    batches = list(chunks(reader.records(start), reader, size))
    assert [r for batch in batches for r in batch.records] == everything
    for index, batch in enumerate(batches):
        resumed = [r for later in batches[index + 1 :] for r in later.records]
        assert list(reader.records(batch.end)) == resumed
