"""Demo data: a small, believable book of channels, customers, tickets and a year of activity.

Every row carries a stable `demo-…` external reference and is inserted with ON CONFLICT DO NOTHING,
so loading twice changes nothing. Times are laid out relative to the start of the current UTC day.
"""

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.core import audit, events
from services.core import interactions as stored
from services.core.models import (
    Channel,
    Customer,
    CustomerChannelMembership,
    Ticket,
)
from services.core.models.base import new_id
from services.core.models.enums import (
    ChannelTier,
    ChannelType,
    InteractionKind,
    LifecycleStage,
    TicketKind,
    TicketPriority,
    TicketStatus,
    ValueTier,
)

ACTOR = audit.Actor(id=None, name="demo")
SEED = 20240917
YEAR = timedelta(days=365)

CHANNELS: Sequence[tuple[str, str, ChannelType, ChannelTier, str, str]] = (
    (
        "demo-ch-01",
        "上海瑞丰贸易有限公司",
        ChannelType.distributor,
        ChannelTier.core,
        "华东",
        "王磊",
    ),
    ("demo-ch-02", "北京鼎盛代理", ChannelType.agent, ChannelTier.growth, "华北", "刘婷"),
    (
        "demo-ch-03",
        "Nordic Distribution AB",
        ChannelType.distributor,
        ChannelTier.growth,
        "Europe",
        "Anna Berg",
    ),
    (
        "demo-ch-04",
        "天猫旗舰店 Tmall Flagship",
        ChannelType.online,
        ChannelTier.core,
        "Online",
        "陈晨",
    ),
    (
        "demo-ch-05",
        "Direct Sales 直销",
        ChannelType.direct,
        ChannelTier.potential,
        "华南",
        "Li Ming",
    ),
)

CUSTOMER_NAMES = (
    "张伟", "李娜", "王芳", "刘洋", "陈静", "杨帆", "赵磊", "黄丽",
    "周杰", "吴敏", "徐强", "孙悦", "马超", "朱琳", "胡斌", "郭婷",
    "杭州云帆科技有限公司", "深圳星河电子", "成都蜀香餐饮", "苏州恒通物流",
    "南京金陵酒店", "广州美佳化妆品", "武汉长江建材", "西安古城文旅",
    "Maria Rossi", "James Carter", "Sophie Martin", "Lukas Schmidt",
    "Emma Johansson", "Carlos Mendes", "Yuki Tanaka", "Olivia Brown",
    "Acme Trading GmbH", "Blue Harbor Foods", "Northwind Retail", "Contoso Ltd",
    "Lumen Studio", "Atlas Outdoor Co.", "Greenleaf Organics", "Pixel & Paper",
)  # fmt: skip

# How a customer behaves over the year: (stage, value tier, activity per month, quiet days at end).
PROFILES: Sequence[tuple[LifecycleStage, ValueTier, float, int]] = (
    (LifecycleStage.active, ValueTier.A, 2.0, 0),
    (LifecycleStage.active, ValueTier.B, 1.2, 0),
    (LifecycleStage.at_risk, ValueTier.A, 1.5, 75),
    (LifecycleStage.churned, ValueTier.C, 0.8, 160),
    (LifecycleStage.onboarding, ValueTier.C, 2.5, 0),
)

ACTIVITY: Sequence[tuple[InteractionKind, int]] = (
    (InteractionKind.order, 40),
    (InteractionKind.visit, 15),
    (InteractionKind.call, 10),
    (InteractionKind.email, 10),
    (InteractionKind.feedback, 10),
    (InteractionKind.usage, 8),
    (InteractionKind.payment, 4),
    (InteractionKind.complaint, 3),
)

TICKET_SUBJECTS = (
    "发货延迟，客户催单",
    "Invoice amount does not match the order",
    "产品质量投诉：包装破损",
    "Request: change delivery address",
    "系统登录失败",
    "Refund request for returned items",
    "售后维修预约",
    "Price list for next quarter",
)

COMPLAINTS = ("送货太慢了", "Product arrived damaged", "客服回复不及时", "Wrong item shipped")


@dataclass(frozen=True)
class DemoResult:
    """Rows this load inserted (zero everywhere when the demo data was already there)."""

    channels: int
    customers: int
    tickets: int
    interactions: int


@dataclass(frozen=True)
class _Customer:
    number: int
    id: uuid.UUID
    channel_id: uuid.UUID | None
    profile: tuple[LifecycleStage, ValueTier, float, int]


async def load(session: AsyncSession, now: datetime | None = None) -> DemoResult:
    """Insert whatever demo rows are missing; flushes only, the caller commits."""
    today = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    # One generator drawn in a fixed order: the same rows (and refs) on every load.
    rng = random.Random(SEED)
    channel_ids, new_channels = await _channels(session)
    customers, new_customers = await _customers(session, rng, today, channel_ids)
    tickets = await _tickets(session, rng, today, customers)
    interactions = await _interactions(session, rng, today, customers)
    return DemoResult(new_channels, new_customers, tickets, interactions)


async def _insert(
    session: AsyncSession, model: Any, key: str, rows: list[dict[str, Any]], resource: str
) -> list[uuid.UUID]:
    """One INSERT … ON CONFLICT DO NOTHING; audits and returns the ids it actually inserted."""
    if not rows:
        return []
    statement = (
        insert(model).values(rows).on_conflict_do_nothing(index_elements=[key]).returning(model.id)
    )
    inserted = list((await session.scalars(statement)).all())
    await _audit(session, resource, rows, inserted)
    return inserted


async def _audit(
    session: AsyncSession, resource: str, rows: list[dict[str, Any]], inserted: list[uuid.UUID]
) -> None:
    by_id = {row["id"]: row for row in rows}
    changes: list[tuple[object | None, dict[str, Any] | None, dict[str, Any] | None]] = [
        (row_id, None, to_jsonable_python(by_id[row_id])) for row_id in inserted
    ]
    await audit.record_many(session, ACTOR, "create", resource, changes)


async def _channels(session: AsyncSession) -> tuple[list[uuid.UUID], int]:
    rows = [
        {
            "id": new_id(),
            "external_ref": ref,
            "name": name,
            "type": type_,
            "tier": tier,
            "region": region,
            "owner": owner,
            "tags": ["demo", region],
            "attributes": {"demo": True},
        }
        for ref, name, type_, tier, region, owner in CHANNELS
    ]
    inserted = await _insert(session, Channel, "external_ref", rows, "channel")
    refs = [ref for ref, *_ in CHANNELS]
    found = await session.execute(
        select(Channel.external_ref, Channel.id).where(Channel.external_ref.in_(refs))
    )
    by_ref = dict(found.tuples().all())
    return [by_ref[ref] for ref in refs if ref in by_ref], len(inserted)


async def _customers(
    session: AsyncSession, rng: random.Random, today: datetime, channel_ids: list[uuid.UUID]
) -> tuple[list[_Customer], int]:
    """The demo customers in a fixed order; memberships for the ones inserted now."""
    rows: list[dict[str, Any]] = []
    for index, name in enumerate(CUSTOMER_NAMES):
        stage, tier, _, _ = PROFILES[index % len(PROFILES)]
        phone = f"+86 138{rng.randrange(10**8):08d}"
        industry = rng.choice(["retail", "餐饮", "制造", "software"])
        rows.append(
            {
                "id": new_id(),
                "external_ref": f"demo-cu-{index + 1:03d}",
                "name": name,
                "email": f"demo-cu-{index + 1:03d}@example.com",
                "phone": None if name.isascii() else phone,
                "owner": CHANNELS[index % len(CHANNELS)][5],
                "channel_id": channel_ids[index % len(channel_ids)] if index % 8 else None,
                "value_tier": tier,
                "lifecycle_stage": stage,
                "tags": ["demo", "vip" if tier is ValueTier.A else "标准客户"],
                "attributes": {"demo": True, "industry": industry},
            }
        )
    inserted = set(await _insert(session, Customer, "external_ref", rows, "customer"))
    memberships = [
        {"customer_id": r["id"], "channel_id": r["channel_id"], "started_at": today - YEAR}
        for r in rows
        if r["id"] in inserted and r["channel_id"] is not None
    ]
    if memberships:
        await session.execute(insert(CustomerChannelMembership).values(memberships))
    refs = [r["external_ref"] for r in rows]
    found = await session.execute(
        select(Customer.external_ref, Customer.id, Customer.channel_id).where(
            Customer.external_ref.in_(refs)
        )
    )
    by_ref = {ref: (customer_id, channel_id) for ref, customer_id, channel_id in found.tuples()}
    customers = [
        _Customer(number, *by_ref[ref], PROFILES[(number - 1) % len(PROFILES)])
        for number, ref in enumerate(refs, start=1)
        if ref in by_ref
    ]
    return customers, len(inserted)


async def _tickets(
    session: AsyncSession, rng: random.Random, today: datetime, customers: list[_Customer]
) -> int:
    rows: list[dict[str, Any]] = []
    for customer in customers[::3]:
        created = today - timedelta(days=rng.randrange(1, 200), hours=rng.randrange(24))
        status = rng.choice(list(TicketStatus))
        done = status in (TicketStatus.resolved, TicketStatus.closed)
        rows.append(
            {
                "id": new_id(),
                "external_id": f"demo-tk-{customer.number:03d}",
                "customer_id": customer.id,
                "channel_id": customer.channel_id,
                "subject": rng.choice(TICKET_SUBJECTS),
                "kind": rng.choice(list(TicketKind)),
                "priority": rng.choice(list(TicketPriority)),
                "status": status,
                "assignee": rng.choice(["客服小王", "Support Team", None]),
                "created_at": created,
                "updated_at": created,
                "first_responded_at": (
                    None if status is TicketStatus.open else created + timedelta(hours=2)
                ),
                "resolved_at": created + timedelta(days=2) if done else None,
                "closed_at": created + timedelta(days=3) if status is TicketStatus.closed else None,
                "resolution": "已处理 / handled" if done else None,
                "satisfaction": rng.randint(2, 5) if done else None,
                "tags": ["demo"],
            }
        )
    inserted = await _insert(session, Ticket, "external_id", rows, "ticket")
    await _emit(session, events.TICKETS_CHANGED, inserted, rows)
    return len(inserted)


async def _interactions(
    session: AsyncSession, rng: random.Random, today: datetime, customers: list[_Customer]
) -> int:
    kinds = [kind for kind, _ in ACTIVITY]
    weights = [weight for _, weight in ACTIVITY]
    rows: list[dict[str, Any]] = []
    for customer in customers:
        stage, tier, per_month, quiet = customer.profile
        first = 60 if stage is LifecycleStage.onboarding else 365
        count = max(2, round(per_month * (first - quiet) / 30))
        for n in range(1, count + 1):
            kind = rng.choices(kinds, weights)[0]
            at = today - timedelta(days=rng.uniform(quiet + 1, first))
            rows.append(
                {
                    **_interaction(rng, kind, tier, at),
                    "id": new_id(),
                    "external_id": f"demo-ix-{customer.number:03d}-{n:03d}",
                    "customer_id": customer.id,
                    "channel_id": customer.channel_id,
                }
            )
    values = [
        tuple(
            stored.attributes_json(row[name]) if name == "attributes" else row[name]
            for name in stored.NAMES
        )
        for row in rows
    ]
    new = await stored.insert(session, values, source="demo")
    inserted = [row["id"] for row in rows if row["id"] in new]
    await _audit(session, "interaction", rows, inserted)
    return len(inserted)


async def _emit(
    session: AsyncSession, type_: str, inserted: list[uuid.UUID], rows: list[dict[str, Any]]
) -> None:
    """One outbox event for the whole batch, as the API writes for a batch."""
    if not inserted:
        return
    owner = {row["id"]: row["customer_id"] for row in rows}
    await events.emit(session, type_, inserted, [owner[i] for i in inserted], source="demo")


def _interaction(
    rng: random.Random, kind: InteractionKind, tier: ValueTier, at: datetime
) -> dict[str, Any]:
    base = {ValueTier.A: 20_000, ValueTier.B: 6_000, ValueTier.C: 1_500}[tier]
    row: dict[str, Any] = {
        "kind": kind,
        "occurred_at": at.replace(microsecond=0),
        "amount": None,
        "currency": None,
        "satisfaction": None,
        "nps": None,
        "summary": None,
        "attributes": {"demo": True},
    }
    if kind in (InteractionKind.order, InteractionKind.payment):
        amount = Decimal(round(base * rng.uniform(0.3, 1.8), 2)).quantize(Decimal("0.01"))
        row.update(amount=amount, currency="CNY")
    elif kind is InteractionKind.feedback:
        if rng.random() < 0.5:
            row.update(satisfaction=rng.randint(1, 5), summary="满意度回访")
        else:
            row.update(nps=rng.randint(0, 10), summary="NPS survey")
    elif kind is InteractionKind.complaint:
        row.update(summary=rng.choice(COMPLAINTS))
    elif kind is InteractionKind.visit:
        row.update(summary=rng.choice(["门店拜访", "On-site visit", "季度业务回顾"]))
    return row
