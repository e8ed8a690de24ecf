"""Fixtures for import tests: a few channels and customers to import against, and queries."""

import csv
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class World:
    """CH-1 and CH-2 (archived); C-1 in CH-1, C-2 in no channel, C-3 in CH-2."""

    channels: dict[str, uuid.UUID]
    customers: dict[str, uuid.UUID]


async def fetch(engine: AsyncEngine, query: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(text(query), params)
        return [dict(row._mapping) for row in result]


@pytest.fixture
async def world(app: FastAPI, engine: AsyncEngine) -> World:
    channels = {"CH-1": uuid.uuid4(), "CH-2": uuid.uuid4()}
    customers = {"C-1": uuid.uuid4(), "C-2": uuid.uuid4(), "C-3": uuid.uuid4()}
    async with engine.begin() as conn:
        for ref, channel_id in channels.items():
            await conn.execute(
                text(
                    "INSERT INTO channels (id, external_ref, name, type, archived_at) "
                    "VALUES (:id, :ref, :name, 'agent', :archived)"
                ),
                {
                    "id": channel_id,
                    "ref": ref,
                    "name": f"渠道 {ref}",
                    "archived": None if ref == "CH-1" else datetime(2026, 1, 1, tzinfo=UTC),
                },
            )
        homes = {"C-1": channels["CH-1"], "C-2": None, "C-3": channels["CH-2"]}
        for ref, customer_id in customers.items():
            await conn.execute(
                text(
                    "INSERT INTO customers (id, external_ref, name, channel_id) "
                    "VALUES (:id, :ref, :name, :channel)"
                ),
                {"id": customer_id, "ref": ref, "name": f"客户 {ref}", "channel": homes[ref]},
            )
    return World(channels, customers)


def write(tmp_path: Path, name: str, lines: list[str] | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(
        lines if isinstance(lines, bytes) else "".join(f"{x}\n" for x in lines).encode()
    )
    return path


def report_lines(path: Path) -> list[tuple[int, str, str]]:
    """The error report of `path` as (line, field, reason), checking its file column."""
    report = path.with_name(path.name + ".errors.csv")
    with report.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["file", "line", "field", "reason"]
    assert {r[0] for r in rows[1:]} <= {str(path)}
    return [(int(r[1]), r[2], r[3]) for r in rows[1:]]
