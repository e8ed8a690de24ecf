import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.models.enums import Scope
from tests.api.customer_rows import insert_channel, insert_customer
from tests.helpers import assert_problem, count_rows, walk

WHEN = "2026-03-01T10:30:00+08:00"
MISSING = "01970000-0000-7000-8000-000000000000"


async def outbox(engine: AsyncEngine) -> list[tuple[str, dict[str, Any]]]:
    """The events written, each payload without the id of the request that wrote it (which
    every API write records: these tests send none, so it is a generated one)."""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT type, payload FROM outbox_events ORDER BY id"))
        events = []
        for r in rows:
            payload = dict(r.payload)
            assert re.fullmatch(r"[0-9a-f]{32}", payload.pop("request_id")), r.payload
            events.append((r.type, payload))
        return events


async def written(engine: AsyncEngine) -> tuple[int, int, int]:
    return (
        await count_rows(engine, "interactions"),
        await count_rows(engine, "outbox_events"),
        await count_rows(engine, "audit_events"),
    )


async def record(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"kind": "visit", "occurred_at": WHEN, **fields}
    response = await client.post("/v1/interactions", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture
async def customer(engine: AsyncEngine) -> dict[str, str]:
    channel = await insert_channel(engine)
    customer = await insert_customer(engine, external_ref="C-1", channel_id=channel)
    return {"id": str(customer), "channel_id": str(channel)}


@pytest.fixture
async def failing_trigger(engine: AsyncEngine) -> AsyncIterator[None]:
    """The database refuses interactions with summary `boom`, and the audit rows (written after
    the interactions and their event) of one with summary `late boom` or of a batch of two."""
    statements = [
        """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END $$""",
        """CREATE TRIGGER refuse_boom BEFORE INSERT ON interactions FOR EACH ROW
           WHEN (NEW.summary = 'boom') EXECUTE FUNCTION refuse()""",
        """CREATE TRIGGER refuse_batch_audit BEFORE INSERT ON audit_events FOR EACH ROW
           WHEN (NEW.after->>'summary' = 'late boom' OR NEW.after->>'created' = '2')
           EXECUTE FUNCTION refuse()""",
    ]
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    yield
    async with engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER refuse_boom ON interactions"))
        await conn.execute(text("DROP TRIGGER refuse_batch_audit ON audit_events"))
        await conn.execute(text("DROP FUNCTION refuse()"))


async def test_create_get_delete(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    created = await record(
        client,
        customer_id=customer["id"],
        kind="order",
        amount="1280.5",
        external_id="erp-1",
        summary="春季补货",
        attributes={"sku_count": 12},
    )
    assert created["amount"] == "1280.5000"
    assert created["currency"] == "CNY"
    assert created["channel_id"] == customer["channel_id"]
    assert created["occurred_at"] == "2026-03-01T02:30:00Z"

    got = await client.get(f"/v1/interactions/{created['id']}")
    assert got.status_code == 200
    assert got.json() == created

    assert await outbox(engine) == [
        ("interactions.created", {"count": 1, "customer_ids": [customer["id"]]})
    ]
    deleted = await client.delete(f"/v1/interactions/{created['id']}")
    assert deleted.status_code == 204
    assert_problem(await client.get(f"/v1/interactions/{created['id']}"), 404)
    assert_problem(await client.delete(f"/v1/interactions/{created['id']}"), 404)
    assert (await outbox(engine))[1] == (
        "interactions.deleted",
        {"ids": [created["id"]], "customer_ids": [customer["id"]]},
    )
    audit = (await client.get("/v1/audit-events", params={"resource_id": created["id"]})).json()
    actions = [(e["action"], e["resource_type"]) for e in audit["items"]]
    assert actions == [("delete", "interaction"), ("create", "interaction")]
    assert audit["items"][0]["before"]["summary"] == "春季补货"


async def test_customer_by_external_ref_and_explicit_channel(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    other_channel = str(await insert_channel(engine, name="Online"))
    by_ref = await record(client, customer_external_ref="C-1")
    assert by_ref["customer_id"] == customer["id"]
    assert by_ref["channel_id"] == customer["channel_id"]
    explicit = await record(client, customer_external_ref="C-1", channel_id=other_channel)
    assert explicit["channel_id"] == other_channel
    without_channel = str(await insert_customer(engine))
    assert (await record(client, customer_id=without_channel))["channel_id"] is None


async def test_kinds_and_their_fields(client: httpx.AsyncClient, customer: dict[str, str]) -> None:
    cid = customer["id"]
    payment = await record(client, customer_id=cid, kind="payment", amount=99.9, currency="usd")
    assert (payment["amount"], payment["currency"]) == ("99.9000", "USD")
    assert (await record(client, customer_id=cid, kind="payment"))["amount"] is None
    feedback = await record(client, customer_id=cid, kind="feedback", nps=0)
    assert (feedback["nps"], feedback["satisfaction"]) == (0, None)
    rated = await record(client, customer_id=cid, kind="feedback", satisfaction=5, nps=10)
    assert (rated["satisfaction"], rated["nps"]) == (5, 10)


async def test_resending_external_id_is_a_no_op(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    first = await record(client, customer_id=customer["id"], external_id="crm-7")
    again = await client.post(
        "/v1/interactions",
        json={
            "customer_id": customer["id"],
            "kind": "call",
            "occurred_at": WHEN,
            "external_id": "crm-7",
        },
    )
    assert again.status_code == 200, again.text
    assert again.json() == first
    keyed = {"Idempotency-Key": "resend"}
    body = {
        "customer_id": customer["id"],
        "kind": "visit",
        "occurred_at": WHEN,
        "external_id": "crm-7",
    }
    for _ in range(2):
        replay = await client.post("/v1/interactions", json=body, headers=keyed)
        assert (replay.status_code, replay.json()["id"]) == (200, first["id"])
    assert await written(engine) == (1, 1, 1)


async def test_idempotency_key_replays(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    body = {"customer_id": customer["id"], "kind": "email", "occurred_at": WHEN}
    headers = {"Idempotency-Key": "i-1"}
    first = await client.post("/v1/interactions", json=body, headers=headers)
    again = await client.post("/v1/interactions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await written(engine) == (1, 1, 1)


async def test_bad_input_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    cid = customer["id"]
    base = {"customer_id": cid, "kind": "visit", "occurred_at": WHEN}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"customer_id": cid, "occurred_at": WHEN}, "body.kind"),
        ({"customer_id": cid, "kind": "visit"}, "body.occurred_at"),
        ({**base, "kind": "tweet"}, "body.kind"),
        ({**base, "kind": 5}, "body.kind"),
        ({**base, "occurred_at": "2026-03-01T10:30:00"}, "body.occurred_at"),
        ({**base, "occurred_at": "yesterday"}, "body.occurred_at"),
        ({**base, "amount": "10"}, "body.amount"),
        ({**base, "kind": "order"}, "body.amount"),
        ({**base, "kind": "order", "amount": "abc"}, "body.amount"),
        ({**base, "kind": "order", "amount": "-1"}, "body.amount"),
        ({**base, "kind": "order", "amount": "1.23456"}, "body.amount"),
        ({**base, "kind": "order", "amount": "1e20"}, "body.amount"),
        ({**base, "kind": "order", "amount": "1", "currency": "XYZ"}, "body.currency"),
        ({**base, "currency": "CNY"}, "body.currency"),
        ({**base, "kind": "feedback"}, "body.nps"),
        ({**base, "kind": "feedback", "satisfaction": 6}, "body.satisfaction"),
        ({**base, "kind": "feedback", "nps": 11}, "body.nps"),
        ({**base, "satisfaction": 3}, "body.satisfaction"),
        ({**base, "nps": 3}, "body.nps"),
        ({"kind": "visit", "occurred_at": WHEN}, "body.customer_id"),
        ({**base, "customer_external_ref": "C-1"}, "body.customer_id"),
        ({**base, "customer_id": "nope"}, "body.customer_id"),
        ({**base, "customer_id": MISSING}, "body.customer_id"),
        (
            {"customer_external_ref": "C-404", "kind": "visit", "occurred_at": WHEN},
            "body.customer_external_ref",
        ),
        ({**base, "channel_id": MISSING}, "body.channel_id"),
        ({**base, "attributes": "x"}, "body.attributes"),
        ({**base, "external_id": ""}, "body.external_id"),
        ({**base, "colour": "red"}, "body.colour"),
        ({**base, "summary": "a\x00b"}, "body.summary"),
        ({**base, "attributes": {"k": ["\x00"]}}, "body.attributes"),
        ({**base, "external_id": "\x00"}, "body.external_id"),
    ]
    for body, field in cases:
        assert_problem(await client.post("/v1/interactions", json=body), 422, field)
    malformed = await client.post(
        "/v1/interactions", content=b'{"kind": ', headers={"content-type": "application/json"}
    )
    assert_problem(malformed, 400)
    assert_problem(await client.post("/v1/interactions", json=[base]), 422, "body")
    assert await written(engine) == (0, 0, 0)


async def test_the_customer_and_channel_of_stored_interactions_cannot_be_deleted(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    """interactions have no foreign keys (each stored row would check and lock its customer and
    channel); what keeps their references valid is that neither is ever deleted."""
    await record(client, customer_id=customer["id"])
    for table in ("customers", "channels"):
        with pytest.raises(DBAPIError) as refused:
            async with engine.begin() as conn:
                await conn.execute(text(f"DELETE FROM {table}"))
        assert refused.value.orig is not None
        assert isinstance(refused.value.orig.__cause__, asyncpg.RestrictViolationError)
        assert f"{table} are archived, never deleted" in str(refused.value)
        assert await count_rows(engine, table) == 1
    [stored] = await walk(client, "/v1/interactions")
    assert (stored["customer_id"], stored["channel_id"]) == (customer["id"], customer["channel_id"])


async def test_readers_cannot_write(
    client: httpx.AsyncClient, client_for: Any, customer: dict[str, str]
) -> None:
    reader = await client_for(Scope.read)
    body = {"customer_id": customer["id"], "kind": "visit", "occurred_at": WHEN}
    assert_problem(await reader.post("/v1/interactions", json=body), 403)
    assert_problem(await reader.post("/v1/interactions/batch", json={"items": [body]}), 403)
    created = await record(client, customer_id=customer["id"])
    assert_problem(await reader.delete(f"/v1/interactions/{created['id']}"), 403)
    assert (await reader.get(f"/v1/interactions/{created['id']}")).status_code == 200


async def test_filters_sorting_and_pagination(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    other = str(await insert_customer(engine))
    channel = str(await insert_channel(engine, name="Store"))
    a = await record(client, customer_id=customer["id"], occurred_at="2026-01-01T00:00:00Z")
    b = await record(
        client,
        customer_id=other,
        kind="call",
        occurred_at="2026-02-01T00:00:00Z",
        channel_id=channel,
    )
    c = await record(
        client,
        customer_id=customer["id"],
        kind="order",
        amount="5",
        occurred_at="2026-03-01T00:00:00Z",
        external_id="x-1",
    )

    async def ids(**params: Any) -> list[str]:
        return [i["id"] for i in await walk(client, "/v1/interactions", limit=1, **params)]

    assert await ids() == [c["id"], b["id"], a["id"]]
    assert await ids(sort="occurred_at") == [a["id"], b["id"], c["id"]]
    assert await ids(sort="-created_at") == [c["id"], b["id"], a["id"]]
    assert await ids(customer_id=customer["id"]) == [c["id"], a["id"]]
    assert await ids(channel_id=channel) == [b["id"]]
    assert await ids(channel_id=customer["channel_id"]) == [c["id"], a["id"]]
    assert await ids(kind="call") == [b["id"]]
    assert await ids(external_id="x-1") == [c["id"]]
    assert await ids(occurred_after="2026-02-01T00:00:00Z") == [c["id"], b["id"]]
    assert await ids(occurred_before="2026-02-01T00:00:00Z") == [a["id"]]
    assert await ids(
        occurred_after="2026-01-15T08:00:00+08:00", occurred_before="2026-02-15T00:00:00Z"
    ) == [b["id"]]
    page = (await client.get("/v1/interactions", params={"limit": 2})).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    bad = {"occurred_after": "2026-02-01T00:00:00"}
    assert_problem(await client.get("/v1/interactions", params=bad), 422, "query.occurred_after")
    for params, field in (
        ({"sort": "amount"}, "query.sort"),
        ({"kind": "tweet"}, "query.kind"),
        ({"customer_id": "x"}, "query.customer_id"),
        ({"cursor": "garbage"}, "query.cursor"),
    ):
        assert_problem(await client.get("/v1/interactions", params=params), 422, field)
    other_sort = (await client.get("/v1/interactions", params={"limit": 1})).json()["next_cursor"]
    wrong = {"sort": "created_at", "cursor": other_sort}
    assert_problem(await client.get("/v1/interactions", params=wrong), 422, "query.cursor")
    assert_problem(await client.get("/v1/interactions/nope"), 422, "path.interaction_id")
    assert_problem(await client.get(f"/v1/interactions/{MISSING}"), 404)


async def test_single_create_rolled_back_leaves_no_event(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str], failing_trigger: None
) -> None:
    body = {"customer_id": customer["id"], "kind": "visit", "occurred_at": WHEN}
    for summary in ("boom", "late boom"):
        response = await client.post("/v1/interactions", json={**body, "summary": summary})
        assert_problem(response, 422)
    assert await written(engine) == (0, 0, 0)
    await record(client, **body, summary="fine")
    assert await written(engine) == (1, 1, 1)


def item(customer_id: str, **fields: Any) -> dict[str, Any]:
    return {"customer_id": customer_id, "kind": "visit", "occurred_at": WHEN, **fields}


async def post_batch(client: httpx.AsyncClient, items: list[Any]) -> dict[str, Any]:
    response = await client.post("/v1/interactions/batch", json={"items": items})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert [r["index"] for r in result["results"]] == list(range(len(items)))
    return result


def fields_of(result: dict[str, Any]) -> set[str]:
    return {e["field"] for e in result["errors"]}


async def test_batch_with_mixed_items(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    cid = customer["id"]
    nobody = str(await insert_customer(engine, external_ref="C-2"))
    items: list[Any] = [
        item(cid, kind="order", amount="10.5", external_id="o-1"),
        item(cid, kind="visit", amount="3"),
        {"customer_external_ref": "C-2", "kind": "call", "occurred_at": WHEN},
        item(cid, occurred_at="2026-03-01T10:30:00"),
        item(MISSING),
        {"customer_external_ref": "C-404", "kind": "call", "occurred_at": WHEN},
        item(cid, external_id="o-1"),
        "not an object",
        item(cid, kind="feedback"),
        item(cid, channel_id=MISSING),
        {"kind": "email", "occurred_at": WHEN, "colour": "red"},
        item(cid, attributes={"path": "C:\\u0000", "big": 10**30}),
        item(cid, attributes={"k\x00": 1}),
    ]
    result = await post_batch(client, items)
    statuses = [r["status"] for r in result["results"]]
    assert statuses == ["created", "error", "created"] + ["error"] * 8 + ["created", "error"]
    assert (result["created"], result["duplicates"], result["errors"]) == (3, 0, 10)
    errors = [fields_of(r) for r in result["results"]]
    assert errors[1] == {"items.1.amount"}
    assert errors[3] == {"items.3.occurred_at"}
    assert errors[4] == {"items.4.customer_id"}
    assert errors[5] == {"items.5.customer_external_ref"}
    assert errors[6] == {"items.6.external_id"}
    assert errors[7] == {"items.7"}
    assert errors[8] == {"items.8.nps"}
    assert errors[9] == {"items.9.channel_id"}
    assert errors[10] == {"items.10.customer_id", "items.10.colour"}
    assert errors[12] == {"items.12.attributes"}

    created = [r["id"] for r in result["results"] if r["status"] == "created"]
    stored = {i["id"]: i for i in await walk(client, "/v1/interactions")}
    assert set(stored) == set(created)
    assert stored[created[0]]["amount"] == "10.5000"
    assert stored[created[0]]["currency"] == "CNY"
    assert stored[created[0]]["channel_id"] == customer["channel_id"]
    assert stored[created[1]]["customer_id"] == nobody
    assert stored[created[2]]["attributes"] == {"path": "C:\\u0000", "big": 10**30}
    assert await outbox(engine) == [
        ("interactions.created", {"count": 3, "customer_ids": sorted([cid, nobody])})
    ]
    audit = await client.get("/v1/audit-events", params={"resource_type": "interaction_batch"})
    [entry] = audit.json()["items"]
    assert entry["action"] == "create"
    assert entry["after"] == {"created": 3, "duplicates": 0, "errors": 10, "ids": created}


async def test_batch_external_ids_dedup_across_batches(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    cid = customer["id"]
    single = await record(client, customer_id=cid, external_id="e-0")
    first = await post_batch(
        client, [item(cid, external_id="e-1"), item(cid, external_id="e-0"), item(cid)]
    )
    assert [r["status"] for r in first["results"]] == ["created", "duplicate", "created"]
    assert first["results"][1]["id"] == single["id"]
    assert await written(engine) == (3, 2, 2)

    again = await post_batch(client, [item(cid, external_id="e-1"), item(cid, external_id="e-0")])
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert again["results"][0]["id"] == first["results"][0]["id"]
    assert (again["created"], again["duplicates"], again["errors"]) == (0, 2, 0)
    assert await written(engine) == (3, 2, 2), "a batch that stored nothing writes no event"


async def test_batch_bad_requests_write_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    one = item(customer["id"])
    for body, field in (
        ({"items": [one] * 1001}, "body.items"),
        ({"items": []}, "body.items"),
        ({"items": one}, "body.items"),
        ({}, "body.items"),
        ({"items": [one], "extra": 1}, "body.extra"),
    ):
        assert_problem(await client.post("/v1/interactions/batch", json=body), 422, field)
    malformed = await client.post(
        "/v1/interactions/batch",
        content=b'{"items": [',
        headers={"content-type": "application/json"},
    )
    assert_problem(malformed, 400)
    result = await post_batch(client, [item(MISSING), {"kind": "visit"}])
    assert (result["created"], result["errors"]) == (0, 2)
    assert await written(engine) == (0, 0, 0)


async def test_batch_failing_in_database_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str], failing_trigger: None
) -> None:
    cid = customer["id"]
    response = await client.post(
        "/v1/interactions/batch", json={"items": [item(cid), item(cid, summary="boom")]}
    )
    assert_problem(response, 422)
    assert await written(engine) == (0, 0, 0)
    # the audit row is written last: its failure takes back the interactions and their event
    response = await client.post("/v1/interactions/batch", json={"items": [item(cid), item(cid)]})
    assert_problem(response, 422)
    assert await written(engine) == (0, 0, 0)
    await post_batch(client, [item(cid), item(cid), item(cid)])
    assert await written(engine) == (3, 1, 1)


async def test_full_batch(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    items = [item(customer["id"], external_id=f"n-{n}") for n in range(1000)]
    result = await post_batch(client, items)
    assert result["created"] == 1000
    assert await count_rows(engine, "interactions") == 1000
    [(_, payload)] = await outbox(engine)
    assert payload["count"] == 1000
    assert payload["customer_ids"] == [customer["id"]]


async def _partitions_of_stored(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        query = text("SELECT tableoid::regclass::text FROM interactions ORDER BY occurred_at")
        return list((await conn.execute(query)).scalars())


async def test_a_back_dated_batch_lands_in_the_partitions_of_its_months(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    """History backfilled through the API goes to its months' partitions, not to the default
    one that the maintenance would empty under a lock on interactions."""
    items = [
        item(customer["id"], occurred_at="2014-06-03T10:00:00+08:00"),
        item(customer["id"], occurred_at="2014-07-31T23:30:00-02:00"),  # August in UTC
    ]
    await post_batch(client, items)
    assert await _partitions_of_stored(engine) == ["interactions_2014_06", "interactions_2014_08"]


async def test_a_back_dated_batch_does_not_wait_for_long_readers(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    """Creating the month's partition would wait for the reader, and every other query of
    interactions behind it: the batch gives the month up and is stored in the default one."""
    async with engine.connect() as reader, reader.begin():
        await reader.execute(text("SELECT count(*) FROM interactions"))
        posting = post_batch(client, [item(customer["id"], occurred_at="2013-02-03T10:00:00Z")])
        result = await asyncio.wait_for(posting, 10)
    assert result["created"] == 1
    assert await _partitions_of_stored(engine) == ["interactions_default"]


async def test_the_partitions_a_batch_makes_are_bounded(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    """The client's dates decide which months get a partition: a typo must not make one, nor
    a batch of many months make many."""
    items = [item(customer["id"], occurred_at=f"{y}-01-15T00:00:00Z") for y in (1985, 2999)]
    items += [item(customer["id"], occurred_at=f"2012-0{m}-15T00:00:00Z") for m in range(1, 6)]
    await post_batch(client, items)
    default = "interactions_default"
    assert await _partitions_of_stored(engine) == [
        default,  # 1985
        "interactions_2012_01",
        "interactions_2012_02",
        "interactions_2012_03",
        default,
        default,
        default,  # 2999
    ]
