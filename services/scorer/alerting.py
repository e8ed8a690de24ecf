"""Alert rules applied to freshly scored customers or channels: one statement opens, refreshes
and auto-resolves the alerts of a whole chunk, and subscribers hear of each opened and
resolved alert in the same transaction."""

import functools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Row, TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core import metrics
from services.core.alerts import Subjects, evaluate, event_data
from services.core.models.enums import AlertKind, AlertSubject
from services.core.webhooks.publish import publish, subscribed

LIVE_WINDOW = timedelta(days=1)
"""Only scores this close to now raise or resolve alerts: recomputing last year opens none."""

_RULES = text("""
SELECT id, kind, params FROM alert_rules
WHERE active AND archived_at IS NULL AND subject = :subject
ORDER BY id
""")

# Narrowing by tier and tag reads the subject's row; a channel rule's channel_id names the
# channel itself.
_NARROWING = {
    AlertSubject.customer: """(cardinality(r.tiers) = 0 OR s.value_tier = ANY(r.tiers))
    AND (r.channel_id IS NULL OR s.channel_id = r.channel_id)
    AND (r.tag IS NULL OR r.tag = ANY(s.tags))""",
    AlertSubject.channel: """(r.channel_id IS NULL OR s.id = r.channel_id)
    AND (r.tag IS NULL OR r.tag = ANY(s.tags))""",
}


@functools.cache
def _apply_sql(subject: AlertSubject) -> TextClause:
    """Open an alert per firing (rule, subject) that has none open; refresh the figures of an
    open one at most daily; resolve the open alerts of auto-resolving rules whose subject was
    evaluated and no longer fires. Answers what was opened and resolved."""
    table = "customers" if subject is AlertSubject.customer else "channels"
    channel = "s.channel_id" if subject is AlertSubject.customer else "s.id"
    return text(f"""
WITH fired AS (
  SELECT * FROM unnest(CAST(:rule_ids AS uuid[]), CAST(:subject_ids AS uuid[]),
                       CAST(:reasons AS jsonb[])) AS f(rule_id, subject_id, reason)
), eligible AS (
  SELECT f.rule_id, f.subject_id, f.reason, r.severity, r.due_hours, s.owner,
    {channel} AS channel_id
  FROM fired f JOIN alert_rules r ON r.id = f.rule_id JOIN {table} s ON s.id = f.subject_id
  WHERE {_NARROWING[subject]}
), opened AS (
  INSERT INTO alerts AS a (id, rule_id, subject, subject_id, channel_id, severity, reason,
    owner, due_at)
  SELECT gen_random_uuid(), rule_id, :subject, subject_id, channel_id, severity, reason, owner,
    now() + make_interval(hours => due_hours)
  FROM eligible
  ON CONFLICT (rule_id, subject_id) WHERE status IN ('open', 'acknowledged') DO UPDATE
    SET reason = excluded.reason, last_fired_at = now(), fire_count = a.fire_count + 1
    WHERE a.last_fired_at < now() - interval '1 day'
  RETURNING a.*, xmax = 0 AS is_new
), resolved AS (
  UPDATE alerts a SET status = 'resolved', closed_at = now(), closed_by = 'auto',
    updated_at = now(), version = a.version + 1
  FROM alert_rules r
  WHERE r.id = a.rule_id AND r.auto_resolve
    AND a.rule_id = ANY(CAST(:evaluated_rules AS uuid[]))
    AND a.subject_id = ANY(CAST(:evaluated_subjects AS uuid[]))
    AND a.status IN ('open', 'acknowledged')
    AND NOT EXISTS (
      SELECT 1 FROM eligible e WHERE e.rule_id = a.rule_id AND e.subject_id = a.subject_id)
  RETURNING a.*
)
SELECT 'alert.opened' AS event, o.id, o.rule_id, rule.name AS rule_name, o.subject,
  o.subject_id, o.severity, o.status, o.reason, o.owner, o.due_at
FROM opened o JOIN alert_rules rule ON rule.id = o.rule_id WHERE o.is_new
UNION ALL
SELECT 'alert.resolved', r.id, r.rule_id, rule.name, r.subject, r.subject_id, r.severity,
  r.status, r.reason, r.owner, r.due_at
FROM resolved r JOIN alert_rules rule ON rule.id = r.rule_id
""")


async def apply_rules(
    session: AsyncSession,
    subject: AlertSubject,
    ids: Sequence[uuid.UUID],
    subjects: Subjects,
    as_of: datetime,
) -> dict[str, int]:
    """Evaluate every active rule for these subjects (aligned with `subjects`); returns how
    many alerts were opened and resolved."""
    if not ids or as_of < datetime.now(UTC) - LIVE_WINDOW:
        return {"opened": 0, "resolved": 0}
    rules = (await session.execute(_RULES, {"subject": subject.value})).all()
    if not rules:
        return {"opened": 0, "resolved": 0}
    rule_ids: list[uuid.UUID] = []
    subject_ids: list[uuid.UUID] = []
    reasons: list[str] = []
    for rule in rules:
        mask, figures = evaluate(AlertKind(rule.kind), rule.params, subjects)
        firing = np.flatnonzero(mask).tolist()
        rule_ids += [rule.id] * len(firing)
        subject_ids += [ids[k] for k in firing]
        reasons += [orjson.dumps(reason).decode() for reason in figures]
    changes = (
        await session.execute(
            _apply_sql(subject),
            {
                "rule_ids": rule_ids,
                "subject_ids": subject_ids,
                "reasons": reasons,
                "subject": subject.value,
                "evaluated_rules": [rule.id for rule in rules],
                "evaluated_subjects": list(ids),
            },
        )
    ).all()
    await _announce(session, changes)
    opened = sum(change.event == "alert.opened" for change in changes)
    metrics.ALERTS_OPENED.labels(subject.value).inc(opened)
    return {"opened": opened, "resolved": len(changes) - opened}


async def _announce(session: AsyncSession, changes: Sequence[Row[Any]]) -> None:
    wanted = await subscribed(session, "alert.opened", "alert.resolved") if changes else set()
    for event in sorted(wanted):
        events = [(c.subject_id, event_data(c)) for c in changes if c.event == event]
        if events:
            await publish(session, event, events)
