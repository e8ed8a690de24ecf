"""The query parameters of the exports: the filters of the matching list endpoints (without
`limit`, `cursor` and `sort`), and the format, from `format` or the Accept header."""

import uuid
from typing import Annotated

from fastapi import Header, Query
from pydantic import AwareDatetime

from services.api.alerts.router import StatusQuery
from services.api.alerts.service import AlertFilters
from services.api.customers.service import CustomerFilters
from services.api.exports.encoding import ExportFormat
from services.api.interactions.service import InteractionFilters
from services.api.scoring.schemas import BandQuery, ScoreMax, ScoreMin
from services.core.errors import DomainError, FieldError
from services.core.models.enums import (
    AlertSubject,
    InteractionKind,
    LifecycleStage,
    Severity,
    ValueTier,
)

ACCEPTED = {
    "text/csv": ExportFormat.csv,
    "text/*": ExportFormat.csv,
    "*/*": ExportFormat.csv,
    "application/x-ndjson": ExportFormat.ndjson,
    "application/*": ExportFormat.ndjson,
}


class NotAcceptable(DomainError):
    status = 406
    title = "Not acceptable"


def export_format(
    format_: Annotated[
        ExportFormat | None,
        Query(
            alias="format",
            description="`csv` or `ndjson`; wins over the Accept header. Default: from Accept "
            "(`text/csv`, `application/x-ndjson`), else `csv`.",
        ),
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ExportFormat:
    if format_ is not None:
        return format_
    if accept is None or not accept.strip():
        return ExportFormat.csv
    chosen = negotiate(accept)
    if chosen is None:
        raise NotAcceptable(
            "Exports are text/csv or application/x-ndjson: accept one of them, or pass format.",
            [FieldError("header.accept", "names neither text/csv nor application/x-ndjson")],
        )
    return chosen


def negotiate(accept: str) -> ExportFormat | None:
    """The format the Accept header prefers: highest q first, then the order given."""
    best: tuple[float, int, ExportFormat] | None = None
    for index, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        format_ = ACCEPTED.get(media.lower())
        if format_ is None:
            continue
        q = _quality(params)
        if q > 0 and (best is None or (-q, index) < (-best[0], best[1])):
            best = (q, index, format_)
    return best[2] if best else None


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def customer_filters(
    channel_id: uuid.UUID | None = None,
    owner: str | None = None,
    tier: Annotated[ValueTier | None, Query(description="Value tier.")] = None,
    lifecycle_stage: LifecycleStage | None = None,
    tag: str | None = None,
    created_after: Annotated[
        AwareDatetime | None, Query(description="Only customers created at or after this time.")
    ] = None,
    created_before: Annotated[
        AwareDatetime | None, Query(description="Only customers created before this time.")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in name or external_ref.")
    ] = None,
    include_archived: bool = False,
    band: BandQuery = None,
    score_min: ScoreMin = None,
    score_max: ScoreMax = None,
) -> CustomerFilters:
    """`GET /v1/customers`'s filters."""
    return CustomerFilters(
        channel_id,
        owner,
        tier,
        lifecycle_stage,
        tag,
        created_after,
        created_before,
        q,
        include_archived,
        band,
        score_min,
        score_max,
    )


def interaction_filters(
    customer_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
    kind: InteractionKind | None = None,
    external_id: str | None = None,
    occurred_after: Annotated[
        AwareDatetime | None, Query(description="Only interactions at or after this time.")
    ] = None,
    occurred_before: Annotated[
        AwareDatetime | None, Query(description="Only interactions before this time.")
    ] = None,
) -> InteractionFilters:
    """`GET /v1/interactions`'s filters."""
    return InteractionFilters(
        customer_id, channel_id, kind, external_id, occurred_after, occurred_before
    )


def alert_filters(
    status: StatusQuery = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    severity: Severity | None = None,
    channel_id: Annotated[
        uuid.UUID | None,
        Query(description="The channel's own alerts and those of its customers."),
    ] = None,
    rule_id: uuid.UUID | None = None,
    subject: AlertSubject | None = None,
    subject_id: Annotated[
        uuid.UUID | None, Query(description="One customer's or channel's alerts.")
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Only alerts opened at or after this time.")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Only alerts opened before this time.")
    ] = None,
) -> AlertFilters:
    """`GET /v1/alerts`'s filters."""
    return AlertFilters(
        status or (), owner, severity, channel_id, rule_id, subject, subject_id, since, until
    )
