"""The scoring profile, recompute requests and the jobs they queue. Scoring itself is the
worker's: these tests check what the API stores and announces."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.models.enums import Scope
from services.core.scoring.profile import DEFAULT_PROFILE, FACTORS
from tests.api.customer_rows import insert_customer
from tests.conftest import KeyMaker
from tests.helpers import assert_problem, count_rows, walk

MISSING = "01970000-0000-7000-8000-000000000000"
WRITES = ("scoring_profiles", "jobs", "outbox_events", "audit_events")


async def written(engine: AsyncEngine) -> dict[str, int]:
    return {table: await count_rows(engine, table) for table in WRITES}


async def fetch(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(text(sql), params)
        return [dict(r) for r in result.mappings()]


async def test_profile_is_the_default_before_any_put(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/scoring/profile")
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"1"'
    assert response.json() == DEFAULT_PROFILE.model_dump(mode="json")
    assert response.json()["bands"] == {"green": 70.0, "yellow": 40.0}


async def test_put_stores_next_version_and_queues_a_recompute(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    before = datetime.now(UTC)
    body = {"bands": {"green": 75, "yellow": 45}, "weights": {"recency": 0.5, "tenure": 0}}
    response = await client.put("/v1/scoring/profile", json=body)
    assert response.status_code == 200, response.text
    saved = response.json()
    assert saved["version"] == 2
    assert saved["bands"] == {"green": 75.0, "yellow": 45.0}
    assert saved["weights"]["recency"] == 0.5
    assert saved["weights"]["tenure"] == 0.0
    assert saved["weights"]["support"] == DEFAULT_PROFILE.weights.support
    assert response.headers["etag"] == '"2"'
    job_id = saved["recompute_job_id"]
    assert response.headers["location"] == f"/v1/jobs/{job_id}"

    got = await client.get("/v1/scoring/profile")
    assert got.headers["etag"] == '"2"'
    assert got.json() == {k: v for k, v in saved.items() if k != "recompute_job_id"}

    [stored] = await fetch(engine, "SELECT version, body, created_by FROM scoring_profiles")
    assert stored["version"] == 2
    assert stored["body"]["bands"] == {"green": 75.0, "yellow": 45.0}
    assert stored["created_by"] == "test"

    [job] = await fetch(engine, "SELECT * FROM jobs")
    assert str(job["id"]) == job_id
    assert (job["kind"], job["status"], job["created_by"]) == ("recompute", "queued", "test")
    assert job["params"]["customer_ids"] is None
    assert job["params"]["reason"] == "profile_changed"
    as_of = datetime.fromisoformat(job["params"]["as_of"])
    assert before <= as_of <= datetime.now(UTC)

    [event] = await fetch(engine, "SELECT type, payload FROM outbox_events")
    assert event["type"] == "jobs.requested"
    assert event["payload"]["ids"] == [job_id]
    assert event["payload"]["customer_ids"] == []

    audited = await fetch(
        engine,
        "SELECT action, resource_id, before, after FROM audit_events "
        "WHERE resource_type = 'scoring_profile'",
    )
    assert len(audited) == 1
    assert audited[0]["action"] == "update"
    assert audited[0]["resource_id"] == "2"
    assert audited[0]["before"]["version"] == 1
    assert audited[0]["after"]["bands"]["green"] == 75.0


async def test_put_ignores_the_version_sent_and_honours_if_match(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    current = (await client.get("/v1/scoring/profile")).json()
    edited = {**current, "version": 99, "churn_inactivity_days": 120}
    first = await client.put("/v1/scoring/profile", json=edited, headers={"If-Match": '"1"'})
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 2
    assert first.json()["churn_inactivity_days"] == 120

    counts = await written(engine)
    stale = await client.put(
        "/v1/scoring/profile", json={**edited, "onboarding_days": 10}, headers={"If-Match": '"1"'}
    )
    assert assert_problem(stale, 412)["current_etag"] == '"2"'
    assert await written(engine) == counts

    second = await client.put(
        "/v1/scoring/profile", json={**edited, "onboarding_days": 10}, headers={"If-Match": '"2"'}
    )
    assert second.status_code == 200, second.text
    assert second.json()["version"] == 3
    assert await count_rows(engine, "jobs") == 2


async def test_put_of_the_active_profile_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    same = await client.put("/v1/scoring/profile", json={})
    assert same.status_code == 200, same.text
    assert same.json()["version"] == 1
    assert same.json()["recompute_job_id"] is None
    assert "location" not in same.headers
    assert await written(engine) == dict.fromkeys(WRITES, 0)

    assert (
        await client.put("/v1/scoring/profile", json={"onboarding_days": 14})
    ).status_code == 200
    active = (await client.get("/v1/scoring/profile")).json()
    again = await client.put("/v1/scoring/profile", json={**active, "version": 7})
    assert again.json()["version"] == 2
    assert again.json()["recompute_job_id"] is None
    assert await count_rows(engine, "scoring_profiles") == 1
    assert await count_rows(engine, "jobs") == 1


async def test_bad_profile_writes_nothing(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    cases: list[tuple[Any, str]] = [
        ({"weights": {"recency": -0.1}}, "body.weights.recency"),
        ({"bands": {"green": 30, "yellow": 60}}, "body.bands"),
        ({"bands": {"green": 130}}, "body.bands.green"),
        ({"recency": {"good_days": 200, "bad_days": 100}}, "body.recency"),
        ({"colour": "red"}, "body.colour"),
        ({"weights": {"loyalty": 1}}, "body.weights.loyalty"),
        (
            {"weights": dict.fromkeys(FACTORS, 0)},
            "body.weights",
        ),
        ({"churn_inactivity_days": "soon"}, "body.churn_inactivity_days"),
        ({"version": 0}, "body.version"),
        ([], "body"),
    ]
    for body, field in cases:
        assert_problem(await client.put("/v1/scoring/profile", json=body), 422, field)
    malformed = await client.put(
        "/v1/scoring/profile", content=b'{"bands": ', headers={"content-type": "application/json"}
    )
    assert_problem(malformed, 400)
    assert await written(engine) == dict.fromkeys(WRITES, 0)
    assert (await client.get("/v1/scoring/profile")).json()["version"] == 1


async def test_recompute_everyone_as_of_now(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    before = datetime.now(UTC)
    response = await client.post("/v1/scoring/recompute", json={})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["kind"], job["status"], job["progress"], job["done"]) == (
        "recompute",
        "queued",
        0,
        0,
    )
    assert job["total"] is None
    assert job["errors"] == []
    assert job["started_at"] is None
    assert job["created_by"] == "test"
    assert job["params"]["customer_ids"] is None
    assert "reason" not in job["params"]
    assert before <= datetime.fromisoformat(job["params"]["as_of"]) <= datetime.now(UTC)

    assert (await client.get(response.headers["location"])).json() == job
    [event] = await fetch(engine, "SELECT type, payload FROM outbox_events")
    assert event["type"] == "jobs.requested"
    assert event["payload"]["ids"] == [job["id"]]
    assert event["payload"]["customer_ids"] == []
    assert await count_rows(engine, "audit_events", "resource_type = 'job'") == 1


async def test_recompute_named_customers_as_of_a_past_time(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ids = [str(await insert_customer(engine, name=f"c{i}")) for i in range(3)]
    body = {"as_of": "2025-06-30T23:59:59+08:00", "customer_ids": ids}
    response = await client.post("/v1/scoring/recompute", json=body)
    assert response.status_code == 202, response.text
    params = response.json()["params"]
    assert params == {"as_of": "2025-06-30T15:59:59+00:00", "customer_ids": ids}
    [stored] = await fetch(engine, "SELECT params FROM jobs")
    assert stored["params"] == params
    assert await count_rows(engine, "outbox_events", "type = 'jobs.requested'") == 1


async def test_recompute_bad_input_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    known = str(await insert_customer(engine))
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    too_many = [str(uuid.uuid4()) for _ in range(10_001)]
    cases: list[tuple[Any, str]] = [
        ({"as_of": "2025-06-30T12:00:00"}, "body.as_of"),
        ({"as_of": future}, "body.as_of"),
        ({"as_of": "0001-01-02T00:00:00Z"}, "body.as_of"),
        ({"as_of": "last week"}, "body.as_of"),
        ({"customer_ids": [known, MISSING]}, "body.customer_ids"),
        ({"customer_ids": too_many}, "body.customer_ids"),
        ({"customer_ids": []}, "body.customer_ids"),
        ({"customer_ids": [known, known]}, "body.customer_ids"),
        ({"customer_ids": ["nope"]}, "body.customer_ids.0"),
        ({"customer_ids": known}, "body.customer_ids"),
        ({"priority": "high"}, "body.priority"),
    ]
    for body, field in cases:
        assert_problem(await client.post("/v1/scoring/recompute", json=body), 422, field)
    unknown = await client.post("/v1/scoring/recompute", json={"customer_ids": [known, MISSING]})
    assert MISSING in unknown.json()["detail"]
    assert unknown.json()["unknown_customer_ids"] == [MISSING]
    malformed = await client.post(
        "/v1/scoring/recompute", content=b'{"as_of": ', headers={"content-type": "application/json"}
    )
    assert_problem(malformed, 400)
    assert await written(engine) == dict.fromkeys(WRITES, 0)


async def test_recompute_with_idempotency_key_queues_one_job(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = {"Idempotency-Key": "nightly-2025-06-30"}
    body = {"as_of": "2025-06-30T16:00:00Z"}
    first = await client.post("/v1/scoring/recompute", json=body, headers=headers)
    again = await client.post("/v1/scoring/recompute", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await count_rows(engine, "jobs") == 1
    assert await count_rows(engine, "outbox_events") == 1


async def test_jobs_get_list_and_filters(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    queued = [(await client.post("/v1/scoring/recompute", json={})).json() for _ in range(5)]
    running = queued[1]["id"]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE jobs SET status = 'running', started_at = now(), total = 10, done = 4, "
                "progress = 0.4 WHERE id = :id"
            ),
            {"id": running},
        )
    got = await client.get(f"/v1/jobs/{running}")
    assert got.status_code == 200, got.text
    assert (got.json()["status"], got.json()["progress"], got.json()["done"]) == ("running", 0.4, 4)
    assert got.json()["total"] == 10
    assert got.json()["started_at"] is not None

    newest_first = [j["id"] for j in reversed(queued)]
    assert [j["id"] for j in await walk(client, "/v1/jobs", limit=2)] == newest_first
    assert [j["id"] for j in await walk(client, "/v1/jobs", status="running")] == [running]
    queued_ids = [i for i in newest_first if i != running]
    assert [j["id"] for j in await walk(client, "/v1/jobs", status="queued")] == queued_ids
    assert len(await walk(client, "/v1/jobs", kind="recompute")) == 5
    assert await walk(client, "/v1/jobs", kind="import") == []

    assert_problem(await client.get(f"/v1/jobs/{MISSING}"), 404)
    assert_problem(await client.get("/v1/jobs/nope"), 422, "path.job_id")
    assert_problem(await client.get("/v1/jobs", params={"status": "paused"}), 422, "query.status")
    assert_problem(await client.get("/v1/jobs", params={"cursor": "x"}), 422, "query.cursor")


async def test_scopes(
    client_for: KeyMaker, anonymous: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    reader = await client_for(Scope.read)
    writer = await client_for(Scope.write)
    assert (await reader.get("/v1/scoring/profile")).status_code == 200
    assert_problem(await reader.put("/v1/scoring/profile", json={"onboarding_days": 5}), 403)
    assert_problem(await writer.put("/v1/scoring/profile", json={"onboarding_days": 5}), 403)
    assert_problem(await reader.post("/v1/scoring/recompute", json={}), 403)
    assert await written(engine) == dict.fromkeys(WRITES, 0)
    created = await writer.post("/v1/scoring/recompute", json={})
    assert created.status_code == 202
    assert (await reader.get(f"/v1/jobs/{created.json()['id']}")).status_code == 200
    assert (await reader.get("/v1/jobs")).status_code == 200
    for response in (
        await anonymous.get("/v1/scoring/profile"),
        await anonymous.post("/v1/scoring/recompute", json={}),
        await anonymous.get("/v1/jobs"),
    ):
        assert_problem(response, 401)
