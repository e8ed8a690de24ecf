"""Score a set of customers as of a time and store the result: the one path shared by live
events, scheduled rescoring and as-of recomputes."""

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Row, TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core import metrics
from services.core.alerts import Subjects
from services.core.models.enums import AlertSubject
from services.core.scoring import channels as channels_math
from services.core.scoring import health, lifecycle
from services.core.scoring.features import NAMES as FEATURE_NAMES
from services.core.scoring.features import Features
from services.core.scoring.profile import ScoringProfile
from services.core.webhooks.publish import publish, subscribed
from services.scorer.alerting import apply_rules
from services.scorer.features import Customers, Loaded, load_features
from services.scorer.value_tiers import TierInputs

TREND_DAYS = 30
NOTIFY_STEP = 5.0
"""Points a score must move (or a band change) before subscribers hear of it."""
_EVENTS: dict[str, tuple[str, str | None]] = {
    "customer": ("customer.health.changed", "customer.band.changed"),
    "channel": ("channel.health.changed", None),
}


def _store_sql(subject: str, factors: tuple[str, ...], features: tuple[str, ...]) -> TextClause:
    """Current score and history in one statement. The ids and bands arrive as arrays, and
    every figure (score, trend, each contribution and feature) as a row of one two-dimensional
    array: asyncpg inspects each element of a one-dimensional array parameter in Python, but
    only the first row of a two-dimensional one. The JSON of contributions and features is built
    here, once per row, not in Python.

    A history row is added when the score, band or profile changed, or on a new day (charts get
    at least one point a day while anything changes, and a retried job adds nothing). The
    current score is the newest as_of: recomputing an older time fills history only. Both parts
    compare against the current row as it was before this statement. With `:notify` it answers
    the subjects whose band changed or whose score moved by `:step` or more, with their
    previous figures."""
    key, table = f"{subject}_id", f"{subject}_health"
    figures = ["score", "trend"]
    figures += [f"c_{k}" for k in range(len(factors))] + [f"f_{k}" for k in range(len(features))]
    rows = ", ".join(f"p.figures[{row}:{row}]" for row in range(1, len(figures) + 1))
    contributions = ", ".join(f"'{name}', n.c_{k}" for k, name in enumerate(factors))
    values = ", ".join(f"'{name}', nullif(n.f_{k}, 'NaN')" for k, name in enumerate(features))
    return text(f"""
WITH n AS MATERIALIZED (
  SELECT n.key, n.score, n.band, nullif(n.trend, 'NaN') AS trend,
    jsonb_build_object({contributions}) AS contributions,
    jsonb_build_object({values}) AS features
  FROM (SELECT CAST(:figures AS float8[]) AS figures) p,
    unnest(CAST(:ids AS uuid[]), CAST(:bands AS text[]), {rows})
    AS n(key, band, {", ".join(figures)})
), old AS MATERIALIZED (
  SELECT h.{key} AS key, h.score, h.band, h.contributions, h.as_of
  FROM {table} h JOIN n ON h.{key} = n.key
  WHERE :notify
), history AS (
  INSERT INTO {subject}_health_history ({key}, score, band, contributions, profile_version, as_of)
  SELECT n.key, n.score, n.band, n.contributions, :version, :as_of
  FROM n LEFT JOIN {table} h ON h.{key} = n.key
  WHERE h.{key} IS NULL OR h.score <> n.score OR h.band <> n.band
     OR h.profile_version <> :version
     OR (h.as_of AT TIME ZONE 'UTC')::date <> (CAST(:as_of AS timestamptz) AT TIME ZONE 'UTC')::date
), current AS (
  INSERT INTO {table}
  ({key}, score, band, contributions, features, trend, profile_version, as_of, computed_at)
SELECT n.key, n.score, n.band, n.contributions, n.features, n.trend, :version, :as_of, now()
FROM n
ON CONFLICT ({key}) DO UPDATE SET
  score = excluded.score, band = excluded.band, contributions = excluded.contributions,
  features = excluded.features, trend = excluded.trend,
  profile_version = excluded.profile_version, as_of = excluded.as_of, computed_at = now()
WHERE excluded.as_of >= {table}.as_of
RETURNING 1
)
SELECT n.key, n.score, n.band, n.contributions, o.score AS previous_score,
  o.band AS previous_band, o.contributions AS previous_contributions
FROM n JOIN old o ON o.key = n.key
WHERE CAST(:as_of AS timestamptz) >= o.as_of
  AND (o.band <> n.band OR abs(o.score - n.score) >= :step)
""")


_store_statement = functools.cache(_store_sql)


def _previous_sql(subject: str) -> TextClause:
    key = f"{subject}_id"
    return text(f"""
SELECT DISTINCT ON ({key}) {key} AS id, score FROM {subject}_health_history
WHERE {key} = ANY(CAST(:ids AS uuid[])) AND as_of <= :before
ORDER BY {key}, as_of DESC
""")


_PREVIOUS = {subject: _previous_sql(subject) for subject in ("customer", "channel")}


# The reason of each move (the figures that decided it) is built here, not in Python.
_MOVE = text("""
WITH moved AS (
  UPDATE customers c SET lifecycle_stage = m.to_stage, updated_at = now(), version = version + 1
  FROM unnest(CAST(:ids AS uuid[]), CAST(:from_stages AS text[]), CAST(:to_stages AS text[]),
              CAST(:scores AS float8[]), CAST(:bands AS text[]), CAST(:days AS float8[]))
    AS m(customer_id, from_stage, to_stage, score, band, days)
  WHERE c.id = m.customer_id AND c.lifecycle_stage = m.from_stage
  RETURNING c.id, m.from_stage, m.to_stage, m.score, m.band, m.days
)
INSERT INTO lifecycle_moves (customer_id, from_stage, to_stage, at, reason)
SELECT id, from_stage, to_stage, :as_of,
  jsonb_build_object('score', score, 'band', band,
                     'days_since_interaction', nullif(days, 'NaN'))
FROM moved
""")


async def _store(
    session: AsyncSession,
    subject: str,
    ids: list[uuid.UUID],
    scores: health.HealthScores,
    features: dict[str, np.ndarray],
    as_of: datetime,
    profile: ScoringProfile,
) -> np.ndarray:
    """Write current scores and history for customers or channels; returns the trend (the
    change against 30 days before), which alert rules read too."""
    before = as_of - timedelta(days=TREND_DAYS)
    previous = {
        r.id: r.score
        for r in await session.execute(_PREVIOUS[subject], {"ids": ids, "before": before})
    }
    trend = health.trend(
        scores.score, np.array([previous.get(i, np.nan) for i in ids], dtype=np.float64)
    )
    factors, names = tuple(scores.contributions), tuple(features)
    figures = np.vstack(
        [
            scores.score,
            trend,
            *(scores.contributions[name] for name in factors),
            *(np.round(features[name], 2) for name in names),
        ]
    )
    params: dict[str, object] = {
        "ids": ids,
        "bands": scores.band.tolist(),
        "figures": figures.tolist(),
        "version": profile.version,
        "as_of": as_of,
    }
    wanted = await subscribed(session, *(t for t in _EVENTS[subject] if t is not None))
    params |= {"notify": bool(wanted), "step": NOTIFY_STEP}
    changes = (await session.execute(_store_statement(subject, factors, names), params)).all()
    if changes:
        await _publish_changes(session, subject, changes, wanted, as_of, profile)
    return trend


async def _publish_changes(
    session: AsyncSession,
    subject: str,
    changes: Sequence[Row[Any]],
    wanted: set[str],
    as_of: datetime,
    profile: ScoringProfile,
) -> None:
    """Webhook events for scores that moved: the figures and the factors that moved most."""
    health_type, band_type = _EVENTS[subject]
    moved, banded = [], []
    for change in changes:
        data = {
            f"{subject}_id": str(change.key),
            "score": change.score,
            "previous_score": change.previous_score,
            "band": change.band,
            "previous_band": change.previous_band,
            "reason": {
                "factors": _moved_factors(change.contributions, change.previous_contributions)
            },
            "as_of": as_of.isoformat(),
            "profile_version": profile.version,
            "link": f"/v1/{subject}s/{change.key}/health",
        }
        moved.append((change.key, data))
        if change.band != change.previous_band:
            banded.append((change.key, data))
    if health_type in wanted:
        await publish(session, health_type, moved)
    if band_type is not None and band_type in wanted and banded:
        await publish(session, band_type, banded)


def _moved_factors(now: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """The three factors whose points changed most, with the change."""
    deltas = {name: round(value - (before.get(name) or 0.0), 2) for name, value in now.items()}
    top = sorted(deltas, key=lambda name: abs(deltas[name]), reverse=True)[:3]
    return {name: deltas[name] for name in top if deltas[name]}


async def rescore(
    session: AsyncSession,
    customers: Customers,
    as_of: datetime,
    profile: ScoringProfile,
    tier_inputs: TierInputs | None = None,
) -> int:
    """Score these customers as of `as_of` with `profile`; returns how many were scored.
    Idempotent: the same inputs write the same rows, so a retried job changes nothing. A full
    recompute passes `tier_inputs` to gather what value tiers are ranked by."""
    loaded = await load_features(session, customers, as_of)
    if not loaded.ids:
        return 0
    if tier_inputs is not None:
        tier_inputs.add(loaded.ids, loaded.columns)
    columns = loaded.columns
    features = Features.from_columns({k: v for k, v in columns.items() if k in FEATURE_NAMES})
    scores = health.score(features, profile)
    trend = await _store(session, "customer", loaded.ids, scores, columns, as_of, profile)
    await _move_stages(session, loaded, scores, as_of, profile)
    subjects = Subjects(scores.score, scores.band, trend, columns)
    await apply_rules(session, AlertSubject.customer, loaded.ids, subjects, as_of)
    metrics.SCORES_COMPUTED.labels("customer").inc(len(loaded.ids))
    return len(loaded.ids)


async def _move_stages(
    session: AsyncSession,
    loaded: Loaded,
    scores: health.HealthScores,
    as_of: datetime,
    profile: ScoringProfile,
) -> None:
    ids, columns = loaded.ids, loaded.columns
    current = np.array(loaded.stages, dtype=object)
    after = lifecycle.next_stage(
        current, scores.band, columns["days_since_interaction"], columns["tenure_days"], profile
    )
    moved = np.flatnonzero(current != after)
    if moved.size == 0:
        return
    days = np.round(columns["days_since_interaction"][moved], 1)
    await session.execute(
        _MOVE,
        {
            "ids": np.array(ids, dtype=object)[moved].tolist(),
            "from_stages": current[moved].tolist(),
            "to_stages": after[moved].tolist(),
            "scores": scores.score[moved].tolist(),
            "bands": scores.band[moved].tolist(),
            "days": days.tolist(),
            "as_of": as_of,
        },
    )


_CHANNEL_MEMBERS = text("""
WITH members AS (
  SELECT m.channel_id, m.customer_id FROM customer_channel_memberships m
  WHERE m.channel_id = ANY(CAST(:ids AS uuid[])) AND m.started_at <= CAST(:as_of AS timestamptz)
    AND (m.ended_at IS NULL OR m.ended_at > CAST(:as_of AS timestamptz))
), scores AS (
  SELECT DISTINCT ON (h.customer_id) h.customer_id, h.score
  FROM customer_health_history h JOIN members USING (customer_id)
  WHERE h.as_of <= CAST(:as_of AS timestamptz) ORDER BY h.customer_id, h.as_of DESC
), revenue AS (
  SELECT i.customer_id, sum(i.amount) AS revenue
  FROM interactions i JOIN members USING (customer_id)
  WHERE i.kind = 'order' AND i.occurred_at > CAST(:as_of AS timestamptz) - interval '365 days' AND i.occurred_at <= CAST(:as_of AS timestamptz)
  GROUP BY i.customer_id
)
SELECT members.channel_id, scores.score, coalesce(revenue.revenue, 0) AS revenue
FROM members LEFT JOIN scores USING (customer_id) LEFT JOIN revenue USING (customer_id)
""")

_CHANNEL_ACTIVITY = text("""
SELECT c.id,
  (SELECT count(*) FROM interactions i WHERE i.channel_id = c.id
     AND i.occurred_at > CAST(:as_of AS timestamptz) - interval '90 days' AND i.occurred_at <= CAST(:as_of AS timestamptz)) AS activity,
  (SELECT count(*) FROM tickets t WHERE t.channel_id = c.id AND t.created_at <= CAST(:as_of AS timestamptz)
     AND (t.resolved_at IS NULL OR t.resolved_at > CAST(:as_of AS timestamptz))) AS open_tickets
FROM channels c WHERE c.id = ANY(CAST(:ids AS uuid[]))
""")


async def rescore_channels(
    session: AsyncSession,
    channel_ids: Sequence[uuid.UUID],
    as_of: datetime,
    profile: ScoringProfile,
) -> int:
    """Channel health as of `as_of` from its members' latest scores by then (weighted by their
    revenue), its own activity and its open tickets."""
    params = {"ids": list(channel_ids), "as_of": as_of}
    channels = (await session.execute(_CHANNEL_ACTIVITY, params)).all()
    if not channels:
        return 0
    ids = [c.id for c in channels]
    index = {channel_id: k for k, channel_id in enumerate(ids)}
    members = (await session.execute(_CHANNEL_MEMBERS, params)).all()
    member_scores = np.array(
        [np.nan if m.score is None else m.score for m in members], dtype=np.float64
    )
    scores = channels_math.channel_health(
        member_scores,
        np.array([float(m.revenue) for m in members], dtype=np.float64),
        np.array([index[m.channel_id] for m in members], dtype=np.intp),
        len(ids),
        np.array([c.activity for c in channels], dtype=np.float64),
        np.array([c.open_tickets for c in channels], dtype=np.float64),
        profile,
    )
    features = {
        "customers": scores.customers.astype(np.float64),
        "customer_score": scores.customer_score,
        "activity_90d": np.array([c.activity for c in channels], dtype=np.float64),
        "open_tickets": np.array([c.open_tickets for c in channels], dtype=np.float64),
    }
    trend = await _store(session, "channel", ids, scores, features, as_of, profile)
    subjects = Subjects(scores.score, scores.band, trend, features)
    await apply_rules(session, AlertSubject.channel, ids, subjects, as_of)
    metrics.SCORES_COMPUTED.labels("channel").inc(len(ids))
    return len(ids)
