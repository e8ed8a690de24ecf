"""Uploads to `POST /v1/imports`, built by hand so a test controls every part, and the settings
that send uploads to a directory of the test's own."""

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.core.config import Settings

BOUNDARY = "retention-test-boundary"


def use_import_dir(
    app: FastAPI, settings: Settings, directory: Path, monkeypatch: pytest.MonkeyPatch, **extra: Any
) -> Settings:
    """Settings whose uploads go to `directory`, in force for the app until the test ends."""
    patched = settings.model_copy(update={"import_dir": directory, **extra})
    # State keeps its attributes in `_state`; monkeypatch.setattr would delete them on undo.
    monkeypatch.setitem(app.state._state, "settings", patched)
    return patched


def multipart(*parts: tuple[str, str | bytes, str | None], close: bool = True) -> bytes:
    """A multipart/form-data body: (name, value, filename or None for a text field)."""
    body = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        data = value.encode() if isinstance(value, str) else value
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += data + b"\r\n"
    if close:
        body += f"--{BOUNDARY}--\r\n".encode()
    return body


async def post_import(
    client: httpx.AsyncClient,
    kind: str,
    filename: str | None,
    content: bytes | None,
    headers: dict[str, str] | None = None,
    **fields: str,
) -> httpx.Response:
    parts: list[tuple[str, str | bytes, str | None]] = [("kind", kind, None)]
    parts += [(name, value, None) for name, value in fields.items()]
    if content is not None:
        parts.append(("file", content, filename))
    return await client.post(
        "/v1/imports",
        content=multipart(*parts),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **(headers or {})},
    )


def uploaded(directory: Path) -> list[str]:
    """What the import directory holds, as paths relative to it."""
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def job_id_of(response: httpx.Response) -> uuid.UUID:
    assert response.status_code == 202, response.text
    job_id = uuid.UUID(response.json()["id"])
    assert response.headers["location"] == f"/v1/jobs/{job_id}"
    return job_id
