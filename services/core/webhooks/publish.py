"""Record events for subscribers in the caller's transaction: a message and one delivery per
subscribed endpoint, so an event and the promise to deliver it commit or roll back together."""

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from services.core.webhooks.catalogue import ANY, EVENT_TYPES

MAX_BODY_BYTES = 20_000
"""Bodies stay small: ids, figures and a link to fetch more."""
DELIVERIES_CHANNEL = "retention_webhooks"
"""NOTIFY channel that wakes the delivery loop when new deliveries commit."""

_PUBLISH = text("""
WITH endpoints AS (
  SELECT id FROM webhook_endpoints
  WHERE active AND disabled_at IS NULL AND CASE
    WHEN CAST(:only AS uuid) IS NULL THEN event_types && ARRAY[CAST(:type AS text), :any]
    ELSE id = CAST(:only AS uuid) END
), events AS (
  SELECT e.message_id, e.subject_id, e.body, e.ord
  FROM unnest(CAST(:message_ids AS text[]), CAST(:subject_ids AS uuid[]),
              CAST(:bodies AS jsonb[])) WITH ORDINALITY AS e(message_id, subject_id, body, ord)
  WHERE EXISTS (SELECT 1 FROM endpoints)
), sequenced AS (
  INSERT INTO webhook_sequences AS s (subject_id, last)
  SELECT subject_id, count(*) FROM events GROUP BY subject_id
  ON CONFLICT (subject_id) DO UPDATE SET last = s.last + excluded.last
  RETURNING s.subject_id, s.last
), numbered AS (
  SELECT e.message_id, e.subject_id, e.body,
    q.last - count(*) OVER (PARTITION BY e.subject_id)
      + row_number() OVER (PARTITION BY e.subject_id ORDER BY e.ord) AS sequence
  FROM events e JOIN sequenced q USING (subject_id)
), messages AS (
  INSERT INTO webhook_messages (id, type, subject_id, sequence, body)
  SELECT message_id, :type, subject_id, sequence,
    jsonb_set(body, '{data,sequence}', to_jsonb(sequence))
  FROM numbered
  RETURNING id
), deliveries AS (
  INSERT INTO webhook_deliveries (id, message_id, endpoint_id)
  SELECT gen_random_uuid(), m.id, p.id FROM messages m CROSS JOIN endpoints p
  RETURNING 1
)
SELECT count(*) AS deliveries, pg_notify(:channel, '') FROM deliveries
""")


_SUBSCRIBED = text("""
SELECT DISTINCT unnest(event_types) FROM webhook_endpoints WHERE active AND disabled_at IS NULL
""")


async def subscribed(session: AsyncSession, *types: str) -> set[str]:
    """Which of these event types some active endpoint wants: producers of many events ask
    first, so that nobody listening costs nothing."""
    wanted = set((await session.scalars(_SUBSCRIBED)).all())
    return set(types) if ANY in wanted else wanted & set(types)


def message_id() -> str:
    """The `webhook-id` of a message: stable across retries and redeliveries."""
    return f"msg_{uuid7().hex}"


def body(type_: str, data: Mapping[str, Any], at: datetime | None = None) -> dict[str, Any]:
    return {"type": type_, "timestamp": (at or datetime.now(UTC)).isoformat(), "data": dict(data)}


async def publish(
    session: AsyncSession,
    type_: str,
    events: Sequence[tuple[uuid.UUID, Mapping[str, Any]]],
    *,
    only_endpoint: uuid.UUID | None = None,
) -> int:
    """Publish events of one type, each `(subject_id, data)`, to every active endpoint that
    subscribes to the type, or to `only_endpoint` alone whatever it subscribes to. Each subject's events get consecutive
    sequence numbers in the given order. Nothing is stored when nobody subscribes. Returns the
    number of deliveries owed."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    if not events:
        return 0
    now = datetime.now(UTC)
    encoded = [orjson.dumps(body(type_, data, now)) for _, data in events]
    if oversize := [len(b) for b in encoded if len(b) > MAX_BODY_BYTES]:
        raise ValueError(f"a {type_} body of {oversize[0]} bytes exceeds {MAX_BODY_BYTES}")
    result = await session.execute(
        _PUBLISH,
        {
            "type": type_,
            "any": ANY,
            "only": only_endpoint,
            "message_ids": [message_id() for _ in events],
            "subject_ids": [subject for subject, _ in events],
            "bodies": [b.decode() for b in encoded],
            "channel": DELIVERIES_CHANNEL,
        },
    )
    return int(result.scalar_one())
