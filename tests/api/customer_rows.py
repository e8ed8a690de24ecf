"""Customers and channels written straight to the database, for tests of resources that
refer to them."""

import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.models import Channel, Customer
from services.core.models.base import new_id
from services.core.models.enums import ChannelType


async def insert_channel(engine: AsyncEngine, **fields: Any) -> uuid.UUID:
    row = {"id": new_id(), "name": "East Distribution", "type": ChannelType.distributor, **fields}
    async with engine.begin() as conn:
        await conn.execute(insert(Channel), [row])
    channel_id: uuid.UUID = row["id"]
    return channel_id


async def insert_customer(engine: AsyncEngine, **fields: Any) -> uuid.UUID:
    row = {"id": new_id(), "name": "张伟 Zhang Wei", **fields}
    async with engine.begin() as conn:
        await conn.execute(insert(Customer), [row])
    customer_id: uuid.UUID = row["id"]
    return customer_id
