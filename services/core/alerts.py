"""Alert rule conditions: the parameters of each kind, and their evaluation over feature arrays.

Conditions describe a state ("no order for 60 days", "band is red"), evaluated for many
subjects at once with numpy. A subject in that state has one open alert per rule; when the
state clears, a rule with `auto_resolve` resolves it."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services.core.models.enums import AlertKind, AlertSubject

Mask = npt.NDArray[np.bool_]
Array = npt.NDArray[np.float64]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Inactivity(_Params):
    """No interaction (or no order) for `days` days."""

    days: int = Field(ge=1, le=3650)
    of: Literal["interaction", "order"] = "interaction"


class OrderValueDrop(_Params):
    """Order value of the last 90 days down by `percent` or more against the 90 days before."""

    percent: float = Field(gt=0, le=100)


class Complaints(_Params):
    """`count` or more complaints (interactions and complaint tickets) in 90 days."""

    count: int = Field(ge=1, le=1000)


class ScoreBelow(_Params):
    score: float = Field(gt=0, le=100)


class ScoreDrop(_Params):
    """The score fell by `points` or more against 30 days before."""

    points: float = Field(gt=0, le=100)


class BandChange(_Params):
    """The band is one of `to` (the alert opens when it gets there)."""

    to: list[Literal["yellow", "red"]] = Field(min_length=1, max_length=2)


class SlaBreach(_Params):
    """`count` or more tickets breached an SLA target in 90 days."""

    count: int = Field(ge=1, le=1000)


class SatisfactionDrop(_Params):
    """Average satisfaction (1-5) of the last 90 days down by `points` or more against the
    year before."""

    points: float = Field(gt=0, le=4)


PARAMS: dict[AlertKind, type[_Params]] = {
    AlertKind.inactivity: Inactivity,
    AlertKind.order_value_drop: OrderValueDrop,
    AlertKind.complaints: Complaints,
    AlertKind.score_below: ScoreBelow,
    AlertKind.score_drop: ScoreDrop,
    AlertKind.band_change: BandChange,
    AlertKind.sla_breach: SlaBreach,
    AlertKind.satisfaction_drop: SatisfactionDrop,
}
CHANNEL_KINDS = frozenset({AlertKind.score_below, AlertKind.score_drop, AlertKind.band_change})
"""Channels have scores but no orders or tickets of their own to count."""

_ADAPTERS = {kind: TypeAdapter(model) for kind, model in PARAMS.items()}


def parse_params(kind: AlertKind, params: Mapping[str, Any]) -> _Params:
    """Validated parameters of a rule kind; raises pydantic's ValidationError."""
    return _ADAPTERS[kind].validate_python(dict(params))


def applies_to(kind: AlertKind, subject: AlertSubject) -> bool:
    return subject is AlertSubject.customer or kind in CHANNEL_KINDS


@dataclass(frozen=True)
class Subjects:
    """What rules look at, one aligned array per figure (NaN where unknown)."""

    score: Array
    band: npt.NDArray[np.str_]
    trend: Array
    columns: Mapping[str, Array]

    def column(self, name: str) -> Array:
        values = self.columns.get(name)
        return np.full(len(self.score), np.nan) if values is None else values


def evaluate(
    kind: AlertKind, params: Mapping[str, Any], subjects: Subjects
) -> tuple[Mask, list[dict[str, Any]]]:
    """Which subjects are in the rule's state, and for each of those the figures that put
    them there (the alert's reason)."""
    p = parse_params(kind, params)
    figures: dict[str, Array]
    with np.errstate(invalid="ignore", divide="ignore"):
        if isinstance(p, Inactivity):
            name = "days_since_interaction" if p.of == "interaction" else "days_since_order"
            days = subjects.column(name)
            # Never active at all counts from the customer's first day.
            days = np.where(np.isnan(days), subjects.column("tenure_days"), days)
            mask, figures = days >= p.days, {name: days}
        elif isinstance(p, OrderValueDrop):
            now, before = subjects.column("revenue_90d"), subjects.column("revenue_prev_90d")
            drop = (before - now) / before * 100
            mask = (before > 0) & (drop >= p.percent)
            figures = {"revenue_90d": now, "revenue_prev_90d": before, "drop_percent": drop}
        elif isinstance(p, Complaints):
            count = subjects.column("complaints_90d")
            mask, figures = count >= p.count, {"complaints_90d": count}
        elif isinstance(p, ScoreBelow):
            mask, figures = subjects.score < p.score, {"score": subjects.score}
        elif isinstance(p, ScoreDrop):
            mask = -subjects.trend >= p.points
            figures = {"score": subjects.score, "change_30d": subjects.trend}
        elif isinstance(p, BandChange):
            mask = np.isin(subjects.band, p.to)
            figures = {"score": subjects.score}
        elif isinstance(p, SlaBreach):
            count = subjects.column("sla_breaches_90d")
            mask, figures = count >= p.count, {"sla_breaches_90d": count}
        else:
            assert isinstance(p, SatisfactionDrop)
            now, before = (
                subjects.column("satisfaction_avg"),
                subjects.column("satisfaction_prev_avg"),
            )
            mask = before - now >= p.points
            figures = {"satisfaction_avg": now, "satisfaction_prev_avg": before}
    mask = np.asarray(mask, dtype=bool)
    reasons = [_reason(kind, p, figures, k, subjects) for k in np.flatnonzero(mask).tolist()]
    return mask, reasons


def _reason(
    kind: AlertKind, params: _Params, figures: Mapping[str, Array], k: int, subjects: Subjects
) -> dict[str, Any]:
    values = {
        name: None if np.isnan(values[k]) else round(float(values[k]), 2)
        for name, values in figures.items()
    }
    return {
        "kind": kind.value,
        "params": params.model_dump(),
        "band": str(subjects.band[k]),
    } | values


def event_data(alert: Any) -> dict[str, Any]:
    """The `data` of every `alert.*` webhook, from an alert row or its read model, whichever
    produced the event (the scorer opening and resolving, or a person acting in the API)."""
    return {
        "alert_id": str(alert.id),
        "rule_id": str(alert.rule_id),
        "rule_name": alert.rule_name,
        "subject": str(alert.subject),
        "subject_id": str(alert.subject_id),
        "severity": str(alert.severity),
        "status": str(alert.status),
        "reason": alert.reason,
        "owner": alert.owner,
        "due_at": alert.due_at.isoformat(),
        "link": f"/v1/alerts/{alert.id}",
    }
