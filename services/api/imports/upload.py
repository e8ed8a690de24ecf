"""A multipart/form-data upload received straight to disk: the file part is written chunk by
chunk as it arrives (never whole in memory, no temporary copy elsewhere), counted against the
size limit as it goes, and hashed on the way for `Idempotency-Key`. The other parts are short
text fields, kept in memory."""

import asyncio
import hashlib
import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

from services.core.errors import DomainError, FieldError, InvalidInput

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "file"
FIELD_MAX_BYTES = 1024
FIELDS_MAX = 20
ENVELOPE_BYTES = 64 * 1024
"""What a request may carry beyond the file: part headers, boundaries and the text fields."""
WRITE_BYTES = 1 << 20
"""File data is handed to a thread to write once this much has arrived."""


class ContentTooLarge(DomainError):
    status = 413
    title = "Content too large"


class UnsupportedMediaType(DomainError):
    status = 415
    title = "Unsupported media type"


def _malformed(reason: str) -> DomainError:
    return DomainError(
        f"The body is not valid multipart/form-data: {reason}.",
        [FieldError("body", reason, "multipart")],
    )


def too_large(limit: int) -> ContentTooLarge:
    return ContentTooLarge(
        f"The file is larger than the {limit:,} bytes an import accepts "
        "(RETENTION_IMPORT_MAX_BYTES).",
        [FieldError("body.file", f"larger than {limit} bytes", "too_large")],
        extra={"max_bytes": limit},
    )


@dataclass
class Received:
    """The text fields, and the file if one came: where it was written, its size and digest."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    filename: str | None = None
    size: int = 0
    sha256: str = ""


class _Parts:
    """python-multipart's callbacks: text parts collect in memory, file data queues up for
    `receive` to write between chunks (the callbacks cannot await)."""

    def __init__(self, destination: Path, limit: int) -> None:
        self.destination = destination
        self.limit = limit
        self.received = Received()
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.file: BinaryIO | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._data = bytearray()
        self.ended = False

    def callbacks(self) -> "MultipartCallbacks":
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }

    @staticmethod
    def _decode(raw: bytes) -> str:
        """Names and values are UTF-8, as browsers and HTTP libraries send them."""
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise _malformed("a part has no name in its Content-Disposition")
        self._name = self._decode(options[b"name"])
        if self._name == FILE_FIELD:
            if self.file is not None or self.received.path is not None:
                raise InvalidInput(
                    "Send one file per import.",
                    [FieldError("body.file", "sent more than once", "repeated")],
                )
            self._is_file = True
            self.received.filename = self._decode(options.get(b"filename", b""))
            self.destination.parent.mkdir(parents=True, exist_ok=True)
            self.file = self.destination.open("xb")
            self.received.path = self.destination
            return
        if self._name in self.received.fields:
            raise InvalidInput(
                f"The field {self._name} was sent more than once.",
                [FieldError(f"body.{self._name}", "sent more than once", "repeated")],
            )
        if len(self.received.fields) >= FIELDS_MAX:
            raise _malformed(f"more than {FIELDS_MAX} fields")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            if self.received.size + end - start > self.limit:
                raise too_large(self.limit)
            self.pending.append(data[start:end])
            self.pending_bytes += end - start
            self.received.size += end - start
            return
        if len(self._data) + end - start > FIELD_MAX_BYTES:
            raise InvalidInput(
                f"The field {self._name} is longer than {FIELD_MAX_BYTES} bytes.",
                [FieldError(f"body.{self._name}", f"longer than {FIELD_MAX_BYTES} bytes", "long")],
            )
        self._data += data[start:end]

    def on_part_end(self) -> None:
        if not self._is_file:
            self.received.fields[self._name] = self._decode(bytes(self._data))

    def on_end(self) -> None:
        self.ended = True


def _write(file: BinaryIO, digest: "hashlib._Hash", chunks: list[bytes]) -> None:
    for chunk in chunks:
        digest.update(chunk)
        file.write(chunk)


async def receive(request: Request, destination: Path, limit: int) -> Received:
    """Read the body of `request`, writing its `file` part to `destination` (created, with its
    directory; both removed again if anything fails). A body that cannot hold a file within
    `limit` bytes, by its Content-Length, is refused before it is read."""
    media_type, options = parse_options_header(request.headers.get("content-type"))
    if media_type != b"multipart/form-data":
        raise UnsupportedMediaType(
            "Send the import as multipart/form-data, with the fields kind and file.",
            [FieldError("header.Content-Type", "not multipart/form-data", "media_type")],
        )
    if b"boundary" not in options:
        raise _malformed("the Content-Type has no boundary")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + ENVELOPE_BYTES:
        raise too_large(limit)
    parts = _Parts(destination, limit)
    digest = hashlib.sha256()
    try:
        parser = MultipartParser(options[b"boundary"], parts.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
            if parts.file is not None and parts.pending_bytes >= WRITE_BYTES:
                await asyncio.to_thread(_write, parts.file, digest, parts.pending)
                parts.pending, parts.pending_bytes = [], 0
        parser.finalize()
        if not parts.ended:
            raise _malformed("it ends before its closing boundary")
        if parts.file is not None:
            await asyncio.to_thread(_write, parts.file, digest, parts.pending)
            await asyncio.to_thread(parts.file.close)
    except BaseException as exc:
        if parts.file is not None:
            parts.file.close()
        await asyncio.to_thread(partial(shutil.rmtree, destination.parent, ignore_errors=True))
        if isinstance(exc, FormParserError):
            raise _malformed(str(exc).rstrip(".") or "unreadable") from None
        if isinstance(exc, ClientDisconnect):
            raise _malformed("the client went away before the body ended") from None
        raise
    parts.received.sha256 = digest.hexdigest()
    return parts.received
