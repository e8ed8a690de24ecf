"""RFC 9457 problem+json for every error the API answers."""

import logging
import re
from collections.abc import Mapping
from typing import Any

from asyncpg import exceptions as pg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from services.api.links import document_links
from services.core.errors import DomainError, FieldError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemField(BaseModel):
    field: str = Field(
        description="Where the problem is: `body.name`, `query.limit`, `items.3.kind`."
    )
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemField] = Field(default_factory=list)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": text}
    for code, text in {
        400: "Malformed request",
        401: "Missing or unknown API key",
        403: "The API key lacks the scope",
        404: "Not found",
        409: "Conflict with stored data",
        412: "If-Match did not match the current version",
        422: "Invalid input; `errors` names each field",
        429: "Past the API key's rate limit; retry after `Retry-After` seconds",
    }.items()
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problems an endpoint can answer, beyond 401/403/422."""
    return {code: PROBLEM_RESPONSES[code] for code in codes}


V1_RESPONSES = responses(401, 403, 422, 429)


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    errors: list[FieldError] | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body["errors"] = [e.as_dict() for e in errors or []]
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def validation_errors(raw: list[Any]) -> list[FieldError]:
    return [FieldError(field=_loc(tuple(e["loc"])), message=e["msg"], type=e["type"]) for e in raw]


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        exc.errors,
        instance=request.url.path,
        headers=headers,
        **exc.extra,
    )


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(list(exc.errors()))
    if any(e.type == "json_invalid" for e in errors):
        return problem(400, "Malformed JSON", "The body is not valid JSON.", errors)
    return problem(422, "Invalid input", "Some fields are invalid.", errors, request.url.path)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail), instance=request.url.path, headers=exc.headers)


_KEY_COLUMNS = re.compile(r"Key \((?P<columns>[^)]+)\)=")


def _field_of(cause: object) -> str:
    """The column a PostgreSQL constraint error names in its detail: `Key (external_ref)=(…)`."""
    column = getattr(cause, "column_name", None)
    if column:
        return f"body.{column}"
    match = _KEY_COLUMNS.search(getattr(cause, "detail", None) or "")
    return f"body.{match['columns']}" if match else "body"


async def _database(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    cause = getattr(exc.orig, "__cause__", None)
    field = _field_of(cause)
    if isinstance(cause, pg.UniqueViolationError):
        return problem(
            409,
            "Conflict",
            f"Another record already has this {field.removeprefix('body.')}.",
            [FieldError(field, "already exists", "unique")],
            request.url.path,
        )
    if isinstance(cause, pg.ForeignKeyViolationError):
        return problem(
            422,
            "Invalid input",
            f"{field.removeprefix('body.')} refers to a record that does not exist.",
            [FieldError(field, "unknown reference", "foreign_key")],
            request.url.path,
        )
    if isinstance(cause, pg.CheckViolationError | pg.DataError):
        return problem(
            422,
            "Invalid input",
            str(cause).split("\n")[0],
            [FieldError(field, "out of range", "check")],
            request.url.path,
        )
    log.exception("database error", exc_info=exc)
    return problem(503, "Database unavailable", "Try again later.", instance=request.url.path)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal error", instance=request.url.path)


_TOO_LARGE = "The body is larger than the service accepts (`max_bytes` says how large)"
_IN_FLIGHT = "Another request with the same Idempotency-Key is still in flight; retry shortly"
_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Every 4xx answer is application/problem+json; every operation that takes a body can
    answer 400 when it is not valid JSON (or not a form, for uploads) and 413 when it is too
    large, and every one that takes an Idempotency-Key 409 while a request with the same key
    runs. Say so in the document, in place of FastAPI's default `application/json` error."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            answers = operation.get("responses", {})
            if "requestBody" in operation:
                answers.setdefault("400", {"description": PROBLEM_RESPONSES[400]["description"]})
                answers.setdefault("413", {"description": _TOO_LARGE})
            names = {p.get("name", "").lower() for p in operation.get("parameters", [])}
            if "idempotency-key" in names:
                answers.setdefault("409", {"description": _IN_FLIGHT})
            for code, answer in answers.items():
                if code.startswith("4"):
                    answer["content"] = _PROBLEM_CONTENT
                    if answer.get("description") == "Validation Error":
                        answer["description"] = PROBLEM_RESPONSES[422]["description"]
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_links(document_problems(generate()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(Exception, _unexpected)
