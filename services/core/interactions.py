"""Storing interactions: the one insert that every API path and the demo use.

`interactions` is partitioned by month, so the uniqueness of `external_id` is kept by
`interaction_external_ids`: the statement claims each external id there first and inserts only
the interactions whose claim succeeded (or that carry none), all in one statement. Claims are
made in external-id order, so two batches that share ids wait for each other instead of
deadlocking. The same statement writes the batch's `interactions.created` outbox event and its
NOTIFY, so no caller can store interactions without their event."""

import uuid
from typing import Any

from sqlalchemy import String, TextClause, any_, bindparam, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.core import events, jsontext
from services.core.logs import request_context
from services.core.models import Interaction, InteractionExternalId

COLUMNS = (
    ("id", "uuid"),
    ("customer_id", "uuid"),
    ("channel_id", "uuid"),
    ("kind", "text"),
    ("occurred_at", "timestamptz"),
    ("amount", "numeric"),
    ("currency", "text"),
    ("satisfaction", "smallint"),
    ("nps", "smallint"),
    ("external_id", "text"),
    ("summary", "text"),
    ("attributes", "text"),
)
"""The values of a row in insert order; `attributes` is JSON text."""
NAMES = tuple(name for name, _ in COLUMNS)
EXTERNAL_ID = NAMES.index("external_id")

_names = ", ".join(NAMES)
INSERT: TextClause = text(f"""
WITH r AS MATERIALIZED (
  SELECT * FROM unnest({", ".join(f"CAST(:{n} AS {t}[])" for n, t in COLUMNS)}) AS r({_names})
), claimed AS (
  INSERT INTO interaction_external_ids (external_id, interaction_id, occurred_at)
  SELECT external_id, id, occurred_at FROM r WHERE external_id IS NOT NULL
  ORDER BY external_id COLLATE "C"
  ON CONFLICT (external_id) DO NOTHING
  RETURNING interaction_id
), inserted AS (
  INSERT INTO interactions ({_names})
  SELECT {_names.replace("attributes", "attributes::jsonb")} FROM r
  WHERE external_id IS NULL OR id IN (SELECT interaction_id FROM claimed)
  RETURNING id, customer_id
), event AS (
  INSERT INTO outbox_events (type, payload)
  SELECT :event_type, CAST(:event_extra AS jsonb) || jsonb_build_object(
    'count', count(*),
    'customer_ids', (SELECT jsonb_agg(c ORDER BY c)
                     FROM (SELECT DISTINCT customer_id::text COLLATE "C" AS c FROM inserted) d))
  FROM inserted HAVING count(*) > 0
  RETURNING id
)
SELECT ARRAY(SELECT id FROM inserted) AS ids,
  (SELECT count(pg_notify(:event_channel, '')) FROM event) AS notified
""")
"""Takes one array per column (see `arrays`) and the event's extra payload; answers the ids it
inserted."""


def attributes_json(value: Any) -> str:
    return jsontext.dumps(value).decode()


def arrays(rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """The parameters of INSERT for rows of values in COLUMNS order."""
    return dict(zip(NAMES, (list(column) for column in zip(*rows, strict=True)), strict=True))


async def insert(
    session: AsyncSession, rows: list[tuple[Any, ...]], **extra: str
) -> set[uuid.UUID]:
    """Insert the rows whose external id is not stored yet, with one `interactions.created`
    event (the request being served and `extra` in its payload) if any was; the ids of those
    inserted."""
    if not rows:
        return set()
    params = {
        **arrays(rows),
        "event_type": events.INTERACTIONS_CREATED,
        "event_extra": jsontext.dumps({**request_context(), **extra}).decode(),
        "event_channel": events.OUTBOX_CHANNEL,
    }
    ids: list[uuid.UUID] = (await session.execute(INSERT, params)).scalar_one()
    return set(ids)


async def stored_ids(session: AsyncSession, external_ids: list[str]) -> dict[str, uuid.UUID]:
    """The stored interaction of each of these external ids that has one."""
    if not external_ids:
        return {}
    query = select(InteractionExternalId.external_id, InteractionExternalId.interaction_id).where(
        InteractionExternalId.external_id
        == any_(bindparam("ext", external_ids, type_=ARRAY(String())))
    )
    return {row.external_id: row.interaction_id for row in await session.execute(query)}


def with_external_id(external_id: str) -> ColumnElement[bool]:
    """The condition on interactions that finds the one with this external id, through the key
    table's index and then one partition's primary key."""
    key = select(InteractionExternalId.interaction_id, InteractionExternalId.occurred_at).where(
        InteractionExternalId.external_id == external_id
    )
    return tuple_(Interaction.id, Interaction.occurred_at).in_(key)
