"""Structured logs: one JSON object per line on stderr for the API and the worker, request ids
carried from a request to the jobs it starts, and secrets kept out.

Code logs with the standard library (`logging.getLogger(__name__)`, fields in `extra=`);
`configure_logging` routes every record, uvicorn's and arq's included, through structlog's
processors, so all lines share one shape:
`{"event": ..., "level": ..., "logger": ..., "timestamp": ..., "request_id": ..., ...}`."""

import functools
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar, Token
from typing import IO, Any

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_MAX_LENGTH = 200
_REQUEST_ID = ContextVar[str | None]("retention_request_id", default=None)
_PRINTABLE = re.compile(rf"[\x20-\x7e]{{1,{REQUEST_ID_MAX_LENGTH}}}")

QUIET_LOGGERS = ("httpx", "httpcore")
"""Loggers written from WARNING up only, whatever the level."""

REDACTED = "[redacted]"
SECRET_FIELDS = frozenset({"authorization", "cookie", "key", "set-cookie", "proxy-authorization"})
SECRET_SUFFIXES = ("secret", "password", "token", "_key", "-key")
"""Fields whose values are never written, whatever they hold: these names, and names ending so
(`api_key`, `secret_key`, `x-api-key`, `previous_secret`, ...), compared lower-cased."""
_SECRET_TEXT = re.compile(
    r"(?P<keep>\bBearer\s+)\S+"  # an Authorization header's credentials
    r"|\brk_[A-Za-z0-9_-]{16,}"  # an API key
    r"|\bwhsec_[A-Za-z0-9+/=_-]{8,}"  # a webhook signing secret
    r"|(?P<scheme>://[^:/@\s]+:)[^@/\s]+(?=@)",  # the password in a URL
    re.IGNORECASE,
)


def _mask(match: re.Match[str]) -> str:
    return (match.group("keep") or match.group("scheme") or "") + REDACTED


def redact_text(text: str) -> str:
    """`text` with API keys, webhook secrets, bearer credentials and URL passwords masked.
    Text holding none of the substrings those contain skips the regex: most lines."""
    if "rk_" in text or "whsec_" in text or "://" in text or "earer" in text or "EARER" in text:
        return _SECRET_TEXT.sub(_mask, text)
    return text


@functools.lru_cache(maxsize=4096)
def is_secret_field(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_FIELDS or lowered.endswith(SECRET_SUFFIXES)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: REDACTED if is_secret_field(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """A structlog processor, run last before rendering: fields named like secrets are masked
    whole, and secrets recognisable by their shape are masked inside any text (the message,
    a traceback, nested mappings)."""
    for name, value in event.items():
        if is_secret_field(name):
            event[name] = REDACTED
        elif isinstance(value, str):
            event[name] = redact_text(value)
        elif isinstance(value, Mapping | list | tuple):
            event[name] = _redact(value)
    return event


def add_request_id(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    request_id = _REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _drop_color_message(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """uvicorn adds its message again with terminal colours, as `extra`."""
    event.pop("color_message", None)
    return event


def _dumps(event: Any, **kwargs: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def configure_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    """JSON lines on `stream` (stderr by default: stdout stays for command output such as
    `retention export`) for every logger at `level` and above. Safe to call again: it
    replaces the handlers it installed."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_color_message],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("retention")
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "retention"] + [handler]
    root.setLevel(level.upper())
    # uvicorn and arq install handlers of their own when they configure logging; theirs go,
    # so each record is written once, by the root handler.
    for name in ("uvicorn", "uvicorn.error", "arq"):
        named = logging.getLogger(name)
        named.handlers = []
        named.propagate = True
        named.setLevel(logging.NOTSET)
    # httpx writes a line per request at INFO: one per webhook attempt, with the subscriber's
    # full URL, which may carry a token in its query.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # The app writes its own access line (services/api/observability.py), with the route and
    # the API key's name; uvicorn's would repeat it.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers = []
    uvicorn_access.propagate = False


def request_id_from(value: str | None) -> str:
    """The client's `X-Request-ID` when it is 1-200 printable ASCII characters; otherwise a new
    random id, so a hostile header cannot forge log lines or bloat them."""
    if value is not None and _PRINTABLE.fullmatch(value):
        return value
    return os.urandom(16).hex()


def current_request_id() -> str | None:
    """The id of the request (or of the request that started the job) being served."""
    return _REQUEST_ID.get()


def set_request_id(request_id: str | None) -> Token[str | None]:
    """Bind `request_id` to every log line of this task (and tasks it starts) until reset."""
    return _REQUEST_ID.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    _REQUEST_ID.reset(token)


def request_context() -> dict[str, str]:
    """`{"request_id": ...}` while serving a request (or a job a request started), else `{}`:
    merged into outbox event payloads so the worker can bind the id when it handles them."""
    request_id = _REQUEST_ID.get()
    return {} if request_id is None else {"request_id": request_id}


def bind_request_ids(request_ids: Iterable[str | None]) -> None:
    """In a job: bind the request id(s) behind it. One id becomes `request_id`; a batch of
    events from several requests binds `request_ids`."""
    ids = sorted({i for i in request_ids if i})
    if len(ids) == 1:
        _REQUEST_ID.set(ids[0])
    elif ids:
        structlog.contextvars.bind_contextvars(request_ids=ids)


async def bind_job_context(ctx: dict[str, Any]) -> None:
    """arq's `on_job_start`: every line logged while a job runs, arq's own included, names the
    job. It runs in the job's own task, so nothing leaks into the next job."""
    structlog.contextvars.bind_contextvars(job_id=ctx.get("job_id"), job_try=ctx.get("job_try"))
