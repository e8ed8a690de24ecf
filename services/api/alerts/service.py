import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.api import references
from services.api.alerts.schemas import (
    AlertDetail,
    AlertNoteCreate,
    AlertNoteRead,
    AlertRead,
    AlertRuleCreate,
    AlertRuleRead,
    AlertRuleUpdate,
    AlertUpdate,
    OwnerReassign,
    OwnerReassigned,
)
from services.api.deps import check_if_match
from services.api.pagination import SortColumn, fetch_page, fetch_rows
from services.core import audit
from services.core.alerts import applies_to, event_data, parse_params
from services.core.db import load
from services.core.errors import Conflict, FieldError, InvalidInput, NotFound
from services.core.models import Alert, AlertNote, AlertRule, Channel, Customer
from services.core.models.alerts import OPEN_STATUSES
from services.core.models.enums import AlertKind, AlertStatus, AlertSubject, Severity, ValueTier
from services.core.webhooks.publish import publish

RULE = "alert_rule"
ALERT = "alert"
OWNER = "owner"

ALERT_UPDATED = "alert.updated"
ALERT_RESOLVED = "alert.resolved"


@dataclass
class RuleFilters:
    subject: AlertSubject | None = None
    kind: AlertKind | None = None
    active: bool | None = None
    include_archived: bool = False


@dataclass
class AlertFilters:
    status: Sequence[AlertStatus] = ()
    owner: str | None = None
    severity: Severity | None = None
    channel_id: uuid.UUID | None = None
    rule_id: uuid.UUID | None = None
    subject: AlertSubject | None = None
    subject_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


# Rules


def rule_snapshot(rule: AlertRule) -> dict[str, Any]:
    return AlertRuleRead.model_validate(rule).model_dump(mode="json")


async def list_rules(
    session: AsyncSession, filters: RuleFilters, cursor: str | None, limit: int
) -> tuple[list[AlertRule], str | None]:
    """Oldest first, so the rules a team started with lead the list."""
    query = select(AlertRule)
    if not filters.include_archived:
        query = query.where(AlertRule.archived_at.is_(None))
    if filters.subject is not None:
        query = query.where(AlertRule.subject == filters.subject)
    if filters.kind is not None:
        query = query.where(AlertRule.kind == filters.kind)
    if filters.active is not None:
        query = query.where(AlertRule.active.is_(filters.active))
    columns = {"created_at": AlertRule.created_at, "id": AlertRule.id}
    return await fetch_page(session, query, "created_at", columns, cursor, limit)


def params_errors(
    kind: AlertKind, params: Mapping[str, Any]
) -> tuple[dict[str, Any], list[FieldError]]:
    """The parameters with defaults filled in, or each problem named under `body.params`."""
    try:
        parsed = parse_params(kind, params)
    except ValidationError as exc:
        errors = [
            FieldError(".".join(["body.params", *map(str, e["loc"])]), e["msg"], e["type"])
            for e in exc.errors()
        ]
        return {}, errors
    return parsed.model_dump(mode="json"), []


async def _channel_errors(session: AsyncSession, channel_id: uuid.UUID | None) -> list[FieldError]:
    if channel_id is None or await references.existing_channels(session, [channel_id]):
        return []
    return [FieldError("body.channel_id", "no channel has this id", "not_found")]


def _tier_errors(subject: AlertSubject, tiers: Sequence[ValueTier]) -> list[FieldError]:
    if subject is AlertSubject.channel and tiers:
        return [FieldError("body.tiers", "value tiers narrow customer rules only", "not_allowed")]
    return []


def _raise_if(errors: list[FieldError]) -> None:
    if errors:
        raise InvalidInput("The rule is invalid.", errors)


async def create_rule(
    session: AsyncSession, actor: audit.Actor, data: AlertRuleCreate
) -> AlertRule:
    errors: list[FieldError] = []
    if not applies_to(data.kind, data.subject):
        errors.append(
            FieldError("body.kind", f"{data.kind.value} does not apply to channels", "not_allowed")
        )
    params, param_errors = params_errors(data.kind, data.params)
    errors += param_errors + _tier_errors(data.subject, data.tiers)
    errors += await _channel_errors(session, data.channel_id)
    _raise_if(errors)
    values = data.model_dump() | {"params": params, "tiers": [t.value for t in data.tiers]}
    rule = AlertRule(**values)
    session.add(rule)
    await session.flush()
    await session.refresh(rule)
    await audit.record(session, actor, "create", RULE, rule.id, None, rule_snapshot(rule))
    return rule


async def update_rule(
    session: AsyncSession,
    actor: audit.Actor,
    rule_id: uuid.UUID,
    data: AlertRuleUpdate,
    if_match: str | None,
) -> AlertRule:
    """Archived rules are read-only: they raise nothing, so changing them would only mislead."""
    rule = await load(session, AlertRule, rule_id, for_update=True)
    check_if_match(if_match, rule.version)
    if rule.archived_at is not None:
        raise Conflict("The rule is archived and cannot change; create a new one.")
    changes = data.model_dump(exclude_unset=True, exclude={"kind", "subject"})
    errors: list[FieldError] = []
    if "params" in changes:
        changes["params"], errors = params_errors(rule.kind, changes["params"])
    if data.tiers is not None:
        changes["tiers"] = [t.value for t in data.tiers]
    errors += _tier_errors(rule.subject, data.tiers or [])
    errors += await _channel_errors(session, data.channel_id)
    _raise_if(errors)
    before = rule_snapshot(rule)
    for name, value in changes.items():
        setattr(rule, name, value)
    rule.version += 1
    rule.updated_at = func.now()
    await session.flush()
    await session.refresh(rule)
    await audit.record(session, actor, "update", RULE, rule.id, before, rule_snapshot(rule))
    return rule


async def archive_rule(session: AsyncSession, actor: audit.Actor, rule_id: uuid.UUID) -> None:
    """The rule stops raising alerts; those it raised keep pointing at it."""
    rule = await load(session, AlertRule, rule_id, for_update=True)
    if rule.archived_at is not None:
        return
    before = rule_snapshot(rule)
    rule.archived_at = datetime.now(UTC)
    rule.active = False
    rule.version += 1
    rule.updated_at = func.now()
    await session.flush()
    await session.refresh(rule)
    await audit.record(session, actor, "archive", RULE, rule.id, before, rule_snapshot(rule))


# Alerts


def _with_rule_name(query: Select[Any]) -> Select[Any]:
    return query.add_columns(AlertRule.name.label("rule_name")).join(
        AlertRule, AlertRule.id == Alert.rule_id
    )


def alert_conditions(f: AlertFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.status:
        conditions.append(Alert.status.in_(list(f.status)))
    for column, value in (
        (Alert.owner, f.owner),
        (Alert.severity, f.severity),
        (Alert.channel_id, f.channel_id),
        (Alert.rule_id, f.rule_id),
        (Alert.subject, f.subject),
        (Alert.subject_id, f.subject_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if f.since is not None:
        conditions.append(Alert.opened_at >= f.since)
    if f.until is not None:
        conditions.append(Alert.opened_at < f.until)
    return conditions


async def list_alerts(
    session: AsyncSession, filters: AlertFilters, cursor: str | None, limit: int
) -> tuple[list[AlertRead], str | None]:
    """Newest first by `opened_at`, each with its rule's name, in one query."""
    query = _with_rule_name(select(Alert)).where(*alert_conditions(filters))
    columns: dict[str, SortColumn] = {"opened_at": Alert.opened_at, "id": Alert.id}
    rows, next_cursor = await fetch_rows(session, query, "-opened_at", columns, cursor, limit)
    return [AlertRead.of(row[0], row.rule_name) for row in rows], next_cursor


async def _notes(session: AsyncSession, alert_id: uuid.UUID) -> list[AlertNoteRead]:
    notes = await session.scalars(
        select(AlertNote)
        .where(AlertNote.alert_id == alert_id)
        .order_by(AlertNote.created_at, AlertNote.id)
    )
    return [AlertNoteRead.model_validate(n) for n in notes]


async def _detail(session: AsyncSession, alert: AlertRead) -> AlertDetail:
    return AlertDetail(**dict(alert), notes=await _notes(session, alert.id))


async def get_alert(session: AsyncSession, alert_id: uuid.UUID) -> AlertDetail:
    row = (
        await session.execute(_with_rule_name(select(Alert)).where(Alert.id == alert_id))
    ).first()
    if row is None:
        raise NotFound(f"Alert {alert_id} does not exist.")
    return await _detail(session, AlertRead.of(row[0], row.rule_name))


async def _rule_name(session: AsyncSession, alert: Alert) -> str:
    name = await session.scalar(select(AlertRule.name).where(AlertRule.id == alert.rule_id))
    assert name is not None  # alerts.rule_id is a foreign key
    return name


def _requires(*statuses: AlertStatus) -> Callable[[Alert, str], None]:
    def check(alert: Alert, verb: str) -> None:
        if alert.status not in statuses:
            allowed = " or ".join(s.value for s in statuses)
            raise Conflict(
                f"The alert is {alert.status.value}; only {allowed} alerts can be {verb}.",
                extra={"current_status": alert.status.value},
            )

    return check


_OPEN_ONLY = _requires(AlertStatus.open)
_NOT_CLOSED = _requires(AlertStatus.open, AlertStatus.acknowledged)


async def _change(
    session: AsyncSession,
    actor: audit.Actor,
    alert_id: uuid.UUID,
    if_match: str | None,
    action: str,
    event: str,
    apply: Callable[[Alert], bool],
    note: str | None = None,
) -> AlertDetail:
    """Lock the alert, check its version, `apply` the change (False: nothing changed), then
    bump the version, audit and publish `event` in this transaction."""
    alert = await load(session, Alert, alert_id, for_update=True)
    check_if_match(if_match, alert.version)
    rule_name = await _rule_name(session, alert)
    before = AlertRead.of(alert, rule_name)
    if not apply(alert) and note is None:
        return await _detail(session, before)
    if note is not None:
        session.add(AlertNote(alert_id=alert.id, author=actor.name, body=note))
    alert.version += 1
    alert.updated_at = func.now()
    await session.flush()
    await session.refresh(alert)
    after = AlertRead.of(alert, rule_name)
    await audit.record(
        session,
        actor,
        action,
        ALERT,
        alert.id,
        before.model_dump(mode="json"),
        after.model_dump(mode="json") | ({"note": note} if note is not None else {}),
    )
    await publish(session, event, [(alert.subject_id, event_data(after))])
    return await _detail(session, after)


async def acknowledge(
    session: AsyncSession, actor: audit.Actor, alert_id: uuid.UUID, if_match: str | None
) -> AlertDetail:
    def apply(alert: Alert) -> bool:
        _OPEN_ONLY(alert, "acknowledged")
        alert.status = AlertStatus.acknowledged
        alert.acknowledged_at = func.now()
        alert.acknowledged_by = actor.name
        return True

    return await _change(session, actor, alert_id, if_match, "acknowledge", ALERT_UPDATED, apply)


def _closing(actor: audit.Actor, status: AlertStatus, verb: str) -> Callable[[Alert], bool]:
    def apply(alert: Alert) -> bool:
        _NOT_CLOSED(alert, verb)
        alert.status = status
        alert.closed_at = func.now()
        alert.closed_by = actor.name
        return True

    return apply


async def resolve(
    session: AsyncSession,
    actor: audit.Actor,
    alert_id: uuid.UUID,
    note: str | None,
    if_match: str | None,
) -> AlertDetail:
    apply = _closing(actor, AlertStatus.resolved, "resolved")
    return await _change(session, actor, alert_id, if_match, "resolve", ALERT_RESOLVED, apply, note)


async def dismiss(
    session: AsyncSession,
    actor: audit.Actor,
    alert_id: uuid.UUID,
    note: str | None,
    if_match: str | None,
) -> AlertDetail:
    apply = _closing(actor, AlertStatus.dismissed, "dismissed")
    return await _change(session, actor, alert_id, if_match, "dismiss", ALERT_UPDATED, apply, note)


async def update_alert(
    session: AsyncSession,
    actor: audit.Actor,
    alert_id: uuid.UUID,
    data: AlertUpdate,
    if_match: str | None,
) -> AlertDetail:
    """Owner and due time of an alert still to be worked on; a request that changes nothing
    writes nothing and sends no event."""
    changes = data.model_dump(exclude_unset=True)

    def apply(alert: Alert) -> bool:
        _NOT_CLOSED(alert, "changed")
        changed = {n: v for n, v in changes.items() if getattr(alert, n) != v}
        for name, value in changed.items():
            setattr(alert, name, value)
        return bool(changed)

    return await _change(session, actor, alert_id, if_match, "update", ALERT_UPDATED, apply)


async def add_note(
    session: AsyncSession,
    actor: audit.Actor,
    alert_id: uuid.UUID,
    data: AlertNoteCreate,
    if_match: str | None,
) -> AlertNoteRead:
    """A note on an alert in any status; the alert's version moves, as its detail changed."""
    alert = await load(session, Alert, alert_id, for_update=True)
    check_if_match(if_match, alert.version)
    note = AlertNote(alert_id=alert.id, author=actor.name, body=data.body)
    session.add(note)
    alert.version += 1
    alert.updated_at = func.now()
    await session.flush()
    await session.refresh(note)
    await session.refresh(alert)
    rule_name = await _rule_name(session, alert)
    created = AlertNoteRead.model_validate(note)
    await audit.record(
        session, actor, "note", ALERT, alert.id, None, created.model_dump(mode="json")
    )
    await publish(
        session, ALERT_UPDATED, [(alert.subject_id, event_data(AlertRead.of(alert, rule_name)))]
    )
    return created


# Owners


def _reassign_errors(data: OwnerReassign) -> list[FieldError]:
    errors: list[FieldError] = []
    if data.from_owner == data.to_owner:
        errors.append(FieldError("body.to_owner", "is the same as from_owner", "same_owner"))
    if (data.tier is not None or data.tag is not None) and "channels" in data.include:
        errors.append(
            FieldError(
                "body.include",
                "tier and tag narrow customers only: leave channels out of include",
                "not_allowed",
            )
        )
    return errors


def _matching_customers(data: OwnerReassign) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if data.channel_id is not None:
        conditions.append(Customer.channel_id == data.channel_id)
    if data.tier is not None:
        conditions.append(Customer.value_tier == data.tier)
    if data.tag is not None:
        conditions.append(Customer.tags.contains([data.tag]))
    return conditions


async def _move_customers(session: AsyncSession, data: OwnerReassign) -> int:
    result = await session.execute(
        update(Customer)
        .where(Customer.owner == data.from_owner, *_matching_customers(data))
        .values(owner=data.to_owner, version=Customer.version + 1, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def _move_channels(session: AsyncSession, data: OwnerReassign) -> int:
    query = update(Channel).where(Channel.owner == data.from_owner)
    if data.channel_id is not None:
        query = query.where(Channel.id == data.channel_id)
    result = await session.execute(
        query.values(
            owner=data.to_owner, version=Channel.version + 1, updated_at=func.now()
        ).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def _move_alerts(session: AsyncSession, data: OwnerReassign) -> list[AlertRead]:
    """Open and acknowledged alerts only: closed ones record who owned them then."""
    query = update(Alert).where(
        Alert.owner == data.from_owner,
        Alert.status.in_(OPEN_STATUSES),
        AlertRule.id == Alert.rule_id,
    )
    if data.channel_id is not None:
        query = query.where(Alert.channel_id == data.channel_id)
    if data.tier is not None or data.tag is not None:
        customers = select(Customer.id).where(*_matching_customers(data))
        query = query.where(Alert.subject == AlertSubject.customer, Alert.subject_id.in_(customers))
    rows = await session.execute(
        query.values(owner=data.to_owner, version=Alert.version + 1, updated_at=func.now())
        .returning(Alert, AlertRule.name)
        .execution_options(synchronize_session=False)
    )
    return [AlertRead.of(alert, name) for alert, name in rows]


async def reassign(
    session: AsyncSession, actor: audit.Actor, data: OwnerReassign
) -> OwnerReassigned:
    """Move what `from_owner` owns to `to_owner` with one UPDATE per kind, in one transaction,
    and record the handover as one audit event."""
    errors = _reassign_errors(data)
    if data.channel_id is not None:
        errors += await _channel_errors(session, data.channel_id)
    if errors:
        raise InvalidInput("The handover is invalid.", errors)
    include = set(data.include)
    customers = await _move_customers(session, data) if "customers" in include else 0
    channels = await _move_channels(session, data) if "channels" in include else 0
    alerts = await _move_alerts(session, data) if "alerts" in include else []
    moved = OwnerReassigned(customers=customers, channels=channels, alerts=len(alerts))
    await publish(session, ALERT_UPDATED, [(a.subject_id, event_data(a)) for a in alerts])
    await audit.record(
        session,
        actor,
        "reassign",
        OWNER,
        None,
        {"owner": data.from_owner},
        {
            "owner": data.to_owner,
            "request": data.model_dump(mode="json"),
            "moved": moved.model_dump(),
        },
    )
    return moved
