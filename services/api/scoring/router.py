from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from services.api.auth import Admin, Reader, Writer
from services.api.deps import IfMatch, ReadSession, Session, etag
from services.api.idempotency import Created, IdempotencyKey, idempotent_create
from services.api.jobs.schemas import JobRead
from services.api.problems import V1_RESPONSES, responses
from services.api.scoring import service
from services.api.scoring.schemas import ProfileSaved, RecomputeRequest
from services.core.profiles import active_profile
from services.core.scoring.profile import ScoringProfile

router = APIRouter(prefix="/scoring", tags=["scoring"], responses=V1_RESPONSES)


@router.get(
    "/profile",
    response_model=ScoringProfile,
    summary="Get the scoring profile",
    description="The weights, thresholds and band cut-offs in use; version 1 is the built-in "
    "default. The ETag is the quoted version.",
)
async def get_profile(session: ReadSession, _: Reader, response: Response) -> ScoringProfile:
    profile = await active_profile(session)
    response.headers["ETag"] = etag(profile.version)
    return profile


@router.put(
    "/profile",
    response_model=ProfileSaved,
    summary="Replace the scoring profile",
    description="Stores the body as the next profile version (omitted parts take their "
    "defaults) and queues a job that rescores every customer as of now with it; "
    "`recompute_job_id` and the `Location` header name that job. A `version` in the body is "
    "ignored: the server numbers versions, so a profile read with GET can be edited and sent "
    "back. Send `If-Match` with the ETag you read to refuse overwriting a newer profile. "
    "Sending the active profile again stores nothing and queues no job.",
    responses=responses(412),
)
async def replace_profile(
    body: ScoringProfile,
    session: Session,
    actor: Admin,
    response: Response,
    if_match: IfMatch = None,
) -> ProfileSaved:
    stored, job = await service.replace_profile(session, actor, body, if_match)
    response.headers["ETag"] = etag(stored.version)
    if job is not None:
        response.headers["Location"] = f"/v1/jobs/{job.id}"
    return ProfileSaved(**dict(stored), recompute_job_id=None if job is None else job.id)


@router.post(
    "/recompute",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Recompute health scores as of a time",
    description="Queues a job that recomputes the scores of the named customers (or all) from "
    "stored interactions that occurred at or before `as_of`, the same way the live path "
    "scores. This is how imported history is scored and how the profile is back-tested. "
    "Answers 202 with the job; poll `Location` (`/v1/jobs/{id}`) for its progress.",
)
async def recompute(
    request: Request,
    body: RecomputeRequest,
    session: Session,
    actor: Writer,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def create() -> Created:
        job = await service.request_recompute(session, actor, body)
        return JobRead.model_validate(job), {"Location": f"/v1/jobs/{job.id}"}

    return await idempotent_create(
        request, session, actor, idempotency_key, body, create, status_code=202
    )
