"""SLA policies over the API, the due times tickets get from them, and the compliance report."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.core import migrations
from services.core.models import Ticket
from services.core.models.base import new_id
from services.core.models.enums import Scope
from services.core.sla.calendar import BusinessHours, working_time_between
from tests.api.customer_rows import insert_channel, insert_customer
from tests.conftest import KeyMaker
from tests.helpers import assert_problem, count_rows

MISSING = "01970000-0000-7000-8000-000000000000"
MINUTE = timedelta(minutes=1)
TARGETS: dict[str, dict[str, int]] = {
    "urgent": {"first_response_minutes": 60, "resolution_minutes": 240},
    "high": {"first_response_minutes": 240, "resolution_minutes": 1440},
    "normal": {"first_response_minutes": 480, "resolution_minutes": 2880},
    "low": {"first_response_minutes": 1440, "resolution_minutes": 5760},
}
FAST: dict[str, dict[str, int]] = {
    p: {"first_response_minutes": 10, "resolution_minutes": 20} for p in TARGETS
}
OFFICE: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "weekly": {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
}


@pytest.fixture(autouse=True)
async def _no_policies(engine: AsyncEngine) -> None:
    """Each test sets up the policies it means, whatever the migrations seeded."""
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM sla_policies"))


@pytest.fixture
async def customer(engine: AsyncEngine) -> dict[str, str]:
    channel = await insert_channel(engine)
    customer = await insert_customer(engine, channel_id=channel)
    return {"id": str(customer), "channel_id": str(channel)}


def at(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


async def create_policy(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Standard", "targets": TARGETS, **fields}
    response = await client.post("/v1/sla-policies", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def open_ticket(client: httpx.AsyncClient, customer_id: str, **fields: Any) -> dict[str, Any]:
    body = {"customer_id": customer_id, "subject": "配送延迟", "kind": "complaint", **fields}
    response = await client.post("/v1/tickets", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def patch(client: httpx.AsyncClient, ticket: dict[str, Any], **fields: Any) -> dict[str, Any]:
    response = await client.patch(f"/v1/tickets/{ticket['id']}", json=fields)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def set_ticket(engine: AsyncEngine, ticket_id: str, **values: Any) -> None:
    """Move a ticket's stored times, as time passing would have."""
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    async with engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE tickets SET {assignments} WHERE id = :id"),
            {**values, "id": uuid.UUID(ticket_id)},
        )


def due_after(
    ticket: dict[str, Any], first: int, resolution: int, ratio: float = 0.8
) -> dict[str, str]:
    """The due fields of a ticket timed around the clock from its creation, without pauses."""
    created = at(ticket["created_at"])

    def iso(minutes: float) -> str:
        return (created + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    return {
        "first_response_due_at": iso(first),
        "resolution_due_at": iso(resolution),
        "first_response_due_soon_at": iso(first * ratio),
        "resolution_due_soon_at": iso(resolution * ratio),
    }


def due_fields(ticket: dict[str, Any]) -> dict[str, str]:
    return {
        name: ticket[name]
        for name in (
            "first_response_due_at",
            "resolution_due_at",
            "first_response_due_soon_at",
            "resolution_due_soon_at",
        )
    }


# The default policy the migration writes.


async def test_migrations_write_a_round_the_clock_default_policy(
    make_database: Callable[[], Awaitable[str]],
) -> None:
    url = await make_database()
    await asyncio.to_thread(migrations.upgrade, url)
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM sla_policies"))).mappings().all()
    await engine.dispose()
    assert len(rows) == 1
    policy = rows[0]
    assert (policy["is_default"], policy["channel_id"], policy["business_hours"]) == (
        True,
        None,
        None,
    )
    assert policy["targets"] == TARGETS
    assert (policy["pause_statuses"], policy["due_soon_ratio"]) == (["pending"], 0.8)


# Policies: create, read, list, update, archive.


async def test_policy_lifecycle(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    hours = {
        "timezone": "Asia/Shanghai",
        "weekly": {"mon": [["09:00", "18:00"]], "sat": [], "tue": [["09:00", "24:00"]]},
        "holidays": ["2026-10-02", "2026-10-01"],
    }
    response = await client.post(
        "/v1/sla-policies",
        json={
            "name": "华东 East",
            "channel_id": customer["channel_id"],
            "targets": TARGETS,
            "business_hours": hours,
            "pause_statuses": ["pending", "resolved"],
            "due_soon_ratio": 0.75,
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    url = f"/v1/sla-policies/{created['id']}"
    assert response.headers["location"] == url
    assert response.headers["etag"] == '"1"'
    assert created["channel_id"] == customer["channel_id"]
    assert (created["is_default"], created["version"], created["archived_at"]) == (False, 1, None)
    assert created["targets"] == TARGETS
    # Stored in normal form: closed days left out, holidays sorted.
    assert created["business_hours"] == {
        "timezone": "Asia/Shanghai",
        "weekly": {"mon": [["09:00", "18:00"]], "tue": [["09:00", "24:00"]]},
        "holidays": ["2026-10-01", "2026-10-02"],
    }
    assert (created["pause_statuses"], created["due_soon_ratio"]) == (["pending", "resolved"], 0.75)

    got = await client.get(url)
    assert (got.json(), got.headers["etag"]) == (created, '"1"')

    stale = await client.patch(url, json={"name": "x"}, headers={"If-Match": '"7"'})
    assert_problem(stale, 412)
    patched = await client.patch(
        url,
        json={
            "targets": {"urgent": {"first_response_minutes": 15, "resolution_minutes": 120}},
            "business_hours": None,
            "due_soon_ratio": 0.5,
        },
        headers={"If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == '"2"'
    changed = patched.json()
    assert changed["targets"] == {
        **TARGETS,
        "urgent": {"first_response_minutes": 15, "resolution_minutes": 120},
    }
    assert (changed["business_hours"], changed["due_soon_ratio"], changed["name"]) == (
        None,
        0.5,
        "华东 East",
    )

    default = await create_policy(client, name="Default", is_default=True)
    listed = (await client.get("/v1/sla-policies")).json()
    assert [p["id"] for p in listed["items"]] == [created["id"], default["id"]]
    assert listed["next_cursor"] is None
    by_channel = await client.get("/v1/sla-policies", params={"channel_id": customer["channel_id"]})
    assert [p["id"] for p in by_channel.json()["items"]] == [created["id"]]
    first_page = (await client.get("/v1/sla-policies", params={"limit": 1})).json()
    second_page = await client.get(
        "/v1/sla-policies", params={"limit": 1, "cursor": first_page["next_cursor"]}
    )
    assert [p["id"] for p in second_page.json()["items"]] == [default["id"]]

    assert (await client.delete(url)).status_code == 204
    assert (await client.delete(url)).status_code == 204  # archiving twice changes nothing
    archived = (await client.get(url)).json()
    assert archived["archived_at"] is not None
    assert archived["version"] == 3
    assert [p["id"] for p in (await client.get("/v1/sla-policies")).json()["items"]] == [
        default["id"]
    ]
    everything = await client.get("/v1/sla-policies", params={"include_archived": "true"})
    assert len(everything.json()["items"]) == 2
    assert_problem(await client.patch(url, json={"name": "again"}), 409)

    # The channel can have a new policy once the old one is archived.
    await create_policy(client, channel_id=customer["channel_id"])
    audit = (await client.get("/v1/audit-events", params={"resource_id": created["id"]})).json()
    assert [e["action"] for e in audit["items"]] == ["archive", "update", "create"]
    assert audit["items"][1]["before"]["due_soon_ratio"] == 0.75
    assert audit["items"][1]["after"]["due_soon_ratio"] == 0.5


async def test_writes_need_the_admin_scope_and_reads_the_read_scope(
    client: httpx.AsyncClient, client_for: KeyMaker, anonymous: httpx.AsyncClient
) -> None:
    policy = await create_policy(client, is_default=True)
    url = f"/v1/sla-policies/{policy['id']}"
    reader, writer = await client_for(Scope.read), await client_for(Scope.write)
    assert (await reader.get(url)).status_code == 200
    assert (await reader.get("/v1/sla-policies")).status_code == 200
    assert (await reader.get("/v1/reports/sla-compliance")).status_code == 200
    for who in (reader, writer):
        body = {"name": "x", "targets": TARGETS}
        assert_problem(await who.post("/v1/sla-policies", json=body), 403)
        assert_problem(await who.patch(url, json={"name": "y"}), 403)
        assert_problem(await who.delete(url), 403)
    assert_problem(await anonymous.get(url), 401)
    assert_problem(await anonymous.get("/v1/reports/sla-compliance"), 401)
    assert (await client.get(url)).json() == policy


async def test_create_replays_under_the_same_idempotency_key(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = {"name": "Default", "is_default": True, "targets": TARGETS}
    headers = {"Idempotency-Key": "policy-1"}
    first = await client.post("/v1/sla-policies", json=body, headers=headers)
    again = await client.post("/v1/sla-policies", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert await count_rows(engine, "sla_policies") == 1


def _targets(**changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {**TARGETS, **changes}


async def test_create_bad_input_names_the_field_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    base: dict[str, Any] = {"name": "Standard", "targets": TARGETS}
    no_high = {k: v for k, v in TARGETS.items() if k != "high"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"targets": TARGETS}, "body.name"),
        ({**base, "name": "  "}, "body.name"),
        ({"name": "x"}, "body.targets"),
        ({**base, "targets": no_high}, "body.targets.high"),
        (
            {
                **base,
                "targets": _targets(low={"first_response_minutes": 0, "resolution_minutes": 5}),
            },
            "body.targets.low.first_response_minutes",
        ),
        (
            {**base, "targets": _targets(low={"first_response_minutes": 5})},
            "body.targets.low.resolution_minutes",
        ),
        (
            {
                **base,
                "targets": _targets(high={"first_response_minutes": 1.5, "resolution_minutes": 5}),
            },
            "body.targets.high.first_response_minutes",
        ),
        (
            {
                **base,
                "targets": _targets(
                    urgent={"first_response_minutes": 60, "resolution_minutes": 30}
                ),
            },
            "body.targets.urgent.resolution_minutes",
        ),
        (
            {
                **base,
                "targets": _targets(
                    normal={"first_response_minutes": 1, "resolution_minutes": 10**7}
                ),
            },
            "body.targets.normal.resolution_minutes",
        ),
        ({**base, "targets": {**TARGETS, "critical": TARGETS["urgent"]}}, "body.targets.critical"),
        ({**base, "due_soon_ratio": 1}, "body.due_soon_ratio"),
        ({**base, "due_soon_ratio": 0}, "body.due_soon_ratio"),
        ({**base, "pause_statuses": ["open"]}, "body.pause_statuses"),
        ({**base, "pause_statuses": ["pending", "pending"]}, "body.pause_statuses"),
        ({**base, "pause_statuses": ["later"]}, "body.pause_statuses.0"),
        ({**base, "business_hours": "weekdays"}, "body.business_hours"),
        ({**base, "business_hours": {"weekly": OFFICE["weekly"]}}, "body.business_hours.timezone"),
        (
            {**base, "business_hours": {**OFFICE, "timezone": "Mars/Olympus"}},
            "body.business_hours.timezone",
        ),
        ({**base, "business_hours": {**OFFICE, "colour": "red"}}, "body.business_hours.colour"),
        (
            {**base, "business_hours": {**OFFICE, "weekly": {"mon": [["18:00", "09:00"]]}}},
            "body.business_hours.weekly.mon.0",
        ),
        (
            {**base, "business_hours": {**OFFICE, "weekly": {"mon": [["09:00", "25:00"]]}}},
            "body.business_hours.weekly.mon.0.1",
        ),
        (
            {**base, "business_hours": {**OFFICE, "weekly": {"someday": []}}},
            "body.business_hours.weekly.someday",
        ),
        ({**base, "business_hours": {**OFFICE, "weekly": {}}}, "body.business_hours.weekly"),
        (
            {**base, "business_hours": {**OFFICE, "holidays": ["2026-02-30"]}},
            "body.business_hours.holidays.0",
        ),
        ({**base, "is_default": True, "channel_id": customer["channel_id"]}, "body.is_default"),
        ({**base, "channel_id": MISSING}, "body.channel_id"),
        ({**base, "channel_id": "east"}, "body.channel_id"),
        ({**base, "colour": "red"}, "body.colour"),
        ({**base, "name": "a\x00b"}, "body.name"),
    ]
    for body, field in cases:
        assert_problem(await client.post("/v1/sla-policies", json=body), 422, field)
    assert await count_rows(engine, "sla_policies") == 0
    assert await count_rows(engine, "audit_events") == 0


async def test_one_default_and_one_policy_per_channel(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    default = await create_policy(client, is_default=True)
    mine = await create_policy(client, channel_id=customer["channel_id"])
    second_default = await client.post(
        "/v1/sla-policies", json={"name": "x", "targets": TARGETS, "is_default": True}
    )
    body = assert_problem(second_default, 409, "body.is_default")
    assert body["conflicting_id"] == default["id"]
    same_channel = {"name": "x", "targets": TARGETS, "channel_id": customer["channel_id"]}
    assert_problem(await client.post("/v1/sla-policies", json=same_channel), 409, "body.channel_id")
    other = await create_policy(client)
    other_url = f"/v1/sla-policies/{other['id']}"
    assert_problem(await client.patch(other_url, json={"is_default": True}), 409, "body.is_default")
    moved = await client.patch(other_url, json={"channel_id": customer["channel_id"]})
    assert_problem(moved, 409, "body.channel_id")
    # A policy may be saved again with its own flags.
    again = await client.patch(f"/v1/sla-policies/{default['id']}", json={"is_default": True})
    assert again.status_code == 200, again.text
    again = await client.patch(
        f"/v1/sla-policies/{mine['id']}", json={"channel_id": customer["channel_id"]}
    )
    assert again.status_code == 200, again.text
    assert await count_rows(engine, "sla_policies") == 3


async def test_update_bad_input_names_the_field_and_changes_nothing(
    client: httpx.AsyncClient, customer: dict[str, str]
) -> None:
    policy = await create_policy(client, channel_id=customer["channel_id"])
    url = f"/v1/sla-policies/{policy['id']}"
    for body, field in (
        ({"name": None}, "body.name"),
        ({"targets": None}, "body.targets"),
        ({"targets": {"low": None}}, "body.targets.low"),
        ({"targets": {"soon": TARGETS["low"]}}, "body.targets.soon"),
        (
            # shorter than the stored first-response target of 240 minutes
            {"targets": {"high": {"first_response_minutes": 240, "resolution_minutes": 200}}},
            "body.targets.high.resolution_minutes",
        ),
        (
            {"targets": {"low": {"resolution_minutes": 10}}},
            "body.targets.low.first_response_minutes",
        ),
        ({"due_soon_ratio": 1.5}, "body.due_soon_ratio"),
        ({"pause_statuses": ["pending", "open"]}, "body.pause_statuses"),
        ({"business_hours": {**OFFICE, "timezone": 8}}, "body.business_hours.timezone"),
        ({"business_hours": {**OFFICE, "holidays": "2026-10-01"}}, "body.business_hours.holidays"),
        ({"is_default": True}, "body.is_default"),  # it belongs to a channel
        ({"channel_id": MISSING}, "body.channel_id"),
        ({"version": 5}, "body.version"),
    ):
        assert_problem(await client.patch(url, json=body), 422, field)
    assert_problem(await client.patch(f"/v1/sla-policies/{MISSING}", json={"name": "x"}), 404)
    assert_problem(await client.patch("/v1/sla-policies/nope", json={}), 422, "path.policy_id")
    assert_problem(await client.delete(f"/v1/sla-policies/{MISSING}"), 404)
    assert_problem(await client.get(f"/v1/sla-policies/{MISSING}"), 404)
    assert (await client.get(url)).json() == policy


# Tickets get their due times from the right policy.


async def test_tickets_take_their_channels_policy_else_the_default(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    no_policy = await open_ticket(client, customer["id"], priority="urgent")
    assert no_policy["sla_policy_id"] is None
    assert set(due_fields(no_policy).values()) == {None}

    default = await create_policy(client, name="Default", is_default=True)
    mine = await create_policy(client, channel_id=customer["channel_id"], targets=FAST)
    other_channel = await insert_channel(engine, name="West")
    other_customer = str(await insert_customer(engine, channel_id=other_channel))

    ours = await open_ticket(client, customer["id"], priority="urgent")
    assert ours["sla_policy_id"] == mine["id"]
    assert due_fields(ours) == due_after(ours, 10, 20)

    theirs = await open_ticket(client, other_customer, priority="urgent")
    assert theirs["sla_policy_id"] == default["id"]
    assert due_fields(theirs) == due_after(theirs, 60, 240)
    assert (await client.get(f"/v1/tickets/{theirs['id']}")).json() == theirs

    # Named explicitly, the ticket's channel decides, not the customer's.
    moved = await open_ticket(
        client, other_customer, priority="low", channel_id=customer["channel_id"]
    )
    assert moved["sla_policy_id"] == mine["id"]

    # A policy in use can be archived: its tickets keep their times, new ones fall back.
    assert (await client.delete(f"/v1/sla-policies/{mine['id']}")).status_code == 204
    kept = (await client.get(f"/v1/tickets/{ours['id']}")).json()
    assert (kept["sla_policy_id"], due_fields(kept)) == (mine["id"], due_fields(ours))
    after = await open_ticket(client, customer["id"], priority="high")
    assert after["sla_policy_id"] == default["id"]
    assert due_fields(after) == due_after(after, 240, 1440)


async def test_business_hours_time_tickets_in_working_time(
    client: httpx.AsyncClient, customer: dict[str, str]
) -> None:
    await create_policy(client, is_default=True, business_hours=OFFICE)
    ticket = await open_ticket(client, customer["id"], priority="high")
    hours = BusinessHours.parse(OFFICE)
    created = at(ticket["created_at"])
    for field, minutes in (
        ("first_response_due_at", 240),
        ("resolution_due_at", 1440),
        ("first_response_due_soon_at", 192),
        ("resolution_due_soon_at", 1152),
    ):
        due = at(ticket[field])
        assert working_time_between(created, due, hours) == timedelta(minutes=minutes)
        assert working_time_between(created, due - MINUTE, hours) < timedelta(minutes=minutes)
    # A day's target spans at least the 15 closed hours of a night.
    assert at(ticket["resolution_due_at"]) - created >= timedelta(hours=24 + 15)


async def test_a_priority_change_retimes_from_creation(
    client: httpx.AsyncClient, customer: dict[str, str]
) -> None:
    policy = await create_policy(client, is_default=True)
    ticket = await open_ticket(client, customer["id"])
    assert due_fields(ticket) == due_after(ticket, 480, 2880)
    urgent = await patch(client, ticket, priority="urgent")
    assert due_fields(urgent) == due_after(ticket, 60, 240)
    assert urgent["sla_policy_id"] == policy["id"]
    low = await patch(client, urgent, priority="low", assignee="li")
    assert due_fields(low) == due_after(ticket, 1440, 5760)
    # Other changes leave the due times alone, even after the policy changed.
    await client.patch(f"/v1/sla-policies/{policy['id']}", json={"targets": {"low": FAST["low"]}})
    renamed = await patch(client, low, subject="还是延迟 still late")
    assert due_fields(renamed) == due_fields(low)
    relowered = await patch(client, renamed, priority="normal")
    assert due_fields(relowered) == due_after(ticket, 480, 2880)


async def test_pausing_stops_the_clock_and_resuming_moves_the_due_times(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    await create_policy(client, is_default=True)
    ticket = await open_ticket(client, customer["id"], priority="urgent")
    pending = await patch(client, ticket, status="pending")
    assert pending["paused_since"] == pending["updated_at"]
    assert pending["sla_pauses"] == []
    assert due_fields(pending) == due_fields(ticket)

    # As if the ticket was opened two hours ago and paused ten minutes later.
    created = at(ticket["created_at"]) - timedelta(hours=2)
    paused = created + timedelta(minutes=10)
    await set_ticket(engine, ticket["id"], created_at=created, paused_since=paused)
    resumed = await patch(client, ticket, status="open")
    back = at(resumed["updated_at"])
    assert resumed["paused_since"] is None
    assert [[at(s), at(e)] for s, e in resumed["sla_pauses"]] == [[paused, back]]
    # 10 working minutes before the pause, the rest after it.
    assert at(resumed["first_response_due_at"]) == back + timedelta(minutes=50)
    assert at(resumed["first_response_due_soon_at"]) == back + timedelta(minutes=38)
    assert at(resumed["resolution_due_at"]) == back + timedelta(minutes=230)
    assert at(resumed["resolution_due_soon_at"]) == back + timedelta(minutes=182)

    # A second pause adds to the first: times are recomputed from creation over both.
    again = await patch(client, resumed, status="pending")
    second = at(again["paused_since"])
    reopened = await patch(client, again, status="open")
    end = at(reopened["updated_at"])
    assert [[at(s), at(e)] for s, e in reopened["sla_pauses"]] == [[paused, back], [second, end]]
    assert at(reopened["first_response_due_at"]) == back + timedelta(minutes=50) + (end - second)


async def test_resolving_a_paused_ticket_ends_the_pause(
    client: httpx.AsyncClient, customer: dict[str, str]
) -> None:
    await create_policy(client, is_default=True)
    ticket = await open_ticket(client, customer["id"], status="pending")
    assert ticket["paused_since"] == ticket["created_at"]
    resolved = await patch(client, ticket, status="resolved")
    assert resolved["paused_since"] is None
    assert len(resolved["sla_pauses"]) == 1
    assert resolved["resolution_breached"] is False


async def test_answers_given_late_set_the_breach_flags(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    await create_policy(client, is_default=True)
    on_time = await open_ticket(client, customer["id"], priority="urgent")
    answered = at(on_time["created_at"]) + timedelta(minutes=30)
    on_time = await patch(client, on_time, first_responded_at=answered.isoformat())
    assert on_time["first_response_breached"] is False

    late = await open_ticket(client, customer["id"], priority="urgent")
    answered = at(late["first_response_due_at"]) + MINUTE
    late = await patch(client, late, first_responded_at=answered.isoformat())
    assert (late["first_response_breached"], late["resolution_breached"]) == (True, False)
    # A breach stays on record, even when a lower priority moves the due time past the answer.
    lowered = await patch(client, late, priority="low")
    assert at(lowered["first_response_due_at"]) > answered
    assert lowered["first_response_breached"] is True

    # Imported with an answer already late.
    created = await open_ticket(
        client,
        customer["id"],
        priority="urgent",
        first_responded_at=(datetime.now(UTC) + timedelta(hours=2)).isoformat(),
    )
    assert created["first_response_breached"] is True

    # Resolved after the due time: as if opened five hours ago.
    slow = await open_ticket(client, customer["id"], priority="urgent")
    past = at(slow["created_at"]) - timedelta(hours=5)
    await set_ticket(
        engine,
        slow["id"],
        created_at=past,
        first_response_due_at=past + timedelta(minutes=60),
        resolution_due_at=past + timedelta(minutes=240),
    )
    resolved = await patch(client, slow, status="resolved")
    # Without a first response recorded, the resolution was the first answer: late too.
    assert (resolved["resolution_breached"], resolved["first_response_breached"]) == (True, True)

    quick = await open_ticket(client, customer["id"], priority="urgent")
    quick = await patch(client, quick, status="closed")
    assert (quick["resolution_breached"], quick["first_response_breached"]) == (False, False)


# The compliance report.


async def insert_ticket(engine: AsyncEngine, **fields: Any) -> None:
    created: datetime = fields["created_at"]
    row = {
        "id": new_id(),
        "subject": "x",
        "kind": "complaint",
        "first_response_due_at": created + timedelta(hours=1),
        "resolution_due_at": created + timedelta(hours=4),
        **fields,
    }
    async with engine.begin() as conn:
        await conn.execute(insert(Ticket), [row])


def utc(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
async def report_tickets(engine: AsyncEngine) -> dict[str, str]:
    """Two weeks of tickets: March 2nd and 9th are Mondays."""
    a, b = await insert_channel(engine, name="A"), await insert_channel(engine, name="B")
    customer = await insert_customer(engine, channel_id=a)

    async def add(
        when: datetime, priority: str, assignee: str | None, channel: uuid.UUID, **fields: Any
    ) -> None:
        await insert_ticket(
            engine,
            customer_id=customer,
            created_at=when,
            priority=priority,
            assignee=assignee,
            channel_id=channel,
            **fields,
        )

    # Week of March 2nd.
    await add(
        utc(3, 2),
        "high",
        "li",
        a,
        first_responded_at=utc(3, 2, 10, 30),
        resolved_at=utc(3, 2, 12),
        status="resolved",
    )
    await add(
        utc(3, 3),
        "high",
        "li",
        a,
        first_responded_at=utc(3, 3, 12),
        first_response_breached=True,
        resolved_at=utc(3, 3, 13),
        status="resolved",
    )
    await add(utc(3, 4), "normal", "wang", b, first_responded_at=utc(3, 4, 10, 5))
    await add(utc(3, 5), "normal", None, a, first_response_breached=True, resolution_breached=True)
    # Week of March 9th.
    await add(utc(3, 10), "high", "wang", b, resolved_at=utc(3, 10, 10, 40), status="resolved")
    await add(utc(3, 11), "high", "li", a)
    # Not counted: no SLA, and outside [since, until).
    await add(
        utc(3, 6),
        "urgent",
        "li",
        a,
        first_response_due_at=None,
        resolution_due_at=None,
        first_response_breached=True,
    )
    await add(utc(3, 16, 0), "high", "li", a, first_response_breached=True)
    await add(utc(3, 1, 23, 59), "high", "li", a, first_response_breached=True)
    return {"a": str(a), "b": str(b)}


WINDOW = {"since": "2026-03-02T00:00:00Z", "until": "2026-03-16T00:00:00Z"}


def row(
    period: str,
    group: str | None,
    tickets: int,
    fr: tuple[int, int],
    res: tuple[int, int],
    fr_pct: float | None,
    res_pct: float | None,
    breaches: int,
) -> dict[str, Any]:
    return {
        "period_start": period,
        "group": group,
        "tickets": tickets,
        "first_response_met": fr[0],
        "first_response_breached": fr[1],
        "first_response_compliance": fr_pct,
        "resolution_met": res[0],
        "resolution_breached": res[1],
        "resolution_compliance": res_pct,
        "breaches": breaches,
    }


WEEK_1, WEEK_2 = "2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z"


async def test_compliance_by_week_and_priority(
    client_for: KeyMaker, report_tickets: dict[str, str]
) -> None:
    reader = await client_for(Scope.read)
    response = await reader.get("/v1/reports/sla-compliance", params=WINDOW)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["granularity"], report["group_by"], report["timezone"]) == (
        "week",
        "priority",
        "UTC",
    )
    assert (report["since"], report["until"]) == ("2026-03-02T00:00:00Z", "2026-03-16T00:00:00Z")
    assert report["rows"] == [
        row(WEEK_1, "high", 2, (1, 1), (2, 0), 50.0, 100.0, 1),
        row(WEEK_1, "normal", 2, (1, 1), (0, 1), 50.0, 0.0, 1),
        # resolved without a first response: the resolution answered in time
        row(WEEK_2, "high", 2, (1, 0), (1, 0), 100.0, 100.0, 0),
    ]


async def test_compliance_by_month_and_assignee(
    client: httpx.AsyncClient, report_tickets: dict[str, str]
) -> None:
    params = {**WINDOW, "granularity": "month", "group_by": "assignee"}
    report = (await client.get("/v1/reports/sla-compliance", params=params)).json()
    month = "2026-03-01T00:00:00Z"
    assert report["rows"] == [
        row(month, "li", 3, (1, 1), (2, 0), 50.0, 100.0, 1),
        row(month, "wang", 2, (2, 0), (1, 0), 100.0, 100.0, 0),
        row(month, None, 1, (0, 1), (0, 1), 0.0, 0.0, 1),
    ]


async def test_compliance_by_week_and_channel(
    client: httpx.AsyncClient, report_tickets: dict[str, str]
) -> None:
    params = {**WINDOW, "group_by": "channel"}
    report = (await client.get("/v1/reports/sla-compliance", params=params)).json()
    a, b = report_tickets["a"], report_tickets["b"]
    week_1 = {
        a: row(WEEK_1, a, 3, (1, 2), (2, 1), 33.3, 66.7, 2),
        b: row(WEEK_1, b, 1, (1, 0), (0, 0), 100.0, None, 0),
    }
    week_2 = {
        a: row(WEEK_2, a, 1, (0, 0), (0, 0), None, None, 0),
        b: row(WEEK_2, b, 1, (1, 0), (1, 0), 100.0, 100.0, 0),
    }
    assert report["rows"] == [week_1[k] for k in sorted(week_1)] + [
        week_2[k] for k in sorted(week_2)
    ]


async def test_compliance_periods_start_in_the_given_timezone(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    customer = await insert_customer(engine)
    # Sunday 20:00 in UTC is already Monday 04:00 in Shanghai.
    await insert_ticket(engine, customer_id=customer, created_at=utc(3, 8, 20), priority="low")
    params = {**WINDOW, "timezone": "Asia/Shanghai"}
    shanghai = (await client.get("/v1/reports/sla-compliance", params=params)).json()
    assert [(r["period_start"], r["tickets"]) for r in shanghai["rows"]] == [
        ("2026-03-08T16:00:00Z", 1)
    ]
    in_utc = (await client.get("/v1/reports/sla-compliance", params=WINDOW)).json()
    assert [r["period_start"] for r in in_utc["rows"]] == [WEEK_1]


async def test_compliance_report_bad_input_names_the_parameter(client: httpx.AsyncClient) -> None:
    url = "/v1/reports/sla-compliance"
    for params, field in (
        ({"granularity": "day"}, "query.granularity"),
        ({"group_by": "customer"}, "query.group_by"),
        ({"since": "2026-03-02T00:00:00"}, "query.since"),
        ({"since": "2026-03-10T00:00:00Z", "until": "2026-03-02T00:00:00Z"}, "query.until"),
        ({"since": "2020-01-01T00:00:00Z", "until": "2026-03-02T00:00:00Z"}, "query.since"),
        ({"until": "0001-01-10T00:00:00Z"}, "query.until"),
        ({"since": "9999-12-01T00:00:00Z"}, "query.since"),
        ({"timezone": "Mars/Olympus"}, "query.timezone"),
    ):
        assert_problem(await client.get(url, params=params), 422, field)
    empty = (await client.get(url)).json()
    assert empty["rows"] == []
    assert at(empty["until"]) - at(empty["since"]) == timedelta(weeks=12)
