"""Assertions and queries the API tests share."""

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def count_rows(engine: AsyncEngine, table: str, where: str = "true", **params: Any) -> int:
    async with engine.connect() as conn:
        result = await conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}"), params)
        return int(result.scalar_one())


def assert_problem(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    """A problem+json answer with this status whose `errors` name each of `fields`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    named = {e["field"] for e in body["errors"]}
    for field in fields:
        assert field in named, f"{field} not in {named}"
    return body


async def walk(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list, following `next_cursor`."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
