"""When to try a webhook delivery again, and what an answer means.

After failed attempt n (1-based) the next one waits SCHEDULE[n - 1], give or take 20 % so that
deliveries failing together do not come back together; after the eighth failure the delivery is
given up. A server's Retry-After can only lengthen a wait, never shorten it: the delay is the
longer of the jittered step and Retry-After (capped at 24 h, and used as given, without jitter,
since the server named a time). A long Retry-After does not buy extra attempts: the count still
ends at eight.
"""

import email.utils
import random
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum

SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.2
RETRY_AFTER_CAP = timedelta(hours=24)

_DELTA_SECONDS = re.compile(r"[0-9]+")


class Outcome(StrEnum):
    """What an attempt means for its delivery."""

    delivered = "delivered"
    retry = "retry"
    gone = "gone"  # 410: the subscriber retired the endpoint; it gets disabled


def classify(status: int | None) -> Outcome:
    """2xx delivered; 410 gone; anything else, including redirects (never followed), 429 and no
    answer at all (`None`: timeout, connection error), is retried."""
    if status is None:
        return Outcome.retry
    if 200 <= status < 300:
        return Outcome.delivered
    if status == 410:
        return Outcome.gone
    return Outcome.retry


def next_delay(attempt: int, retry_after: timedelta | None, rng: random.Random) -> timedelta | None:
    """How long to wait after failed attempt `attempt` (1-based); None when it was the last."""
    if attempt < 1:
        raise ValueError("attempts are counted from 1")
    if attempt >= MAX_ATTEMPTS:
        return None
    step = SCHEDULE[attempt - 1]
    delay = step * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return max(delay, timedelta(0))


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A Retry-After header (RFC 9110 §10.2.3: delta-seconds or an HTTP-date) as a wait from
    `now` (timezone-aware). None when absent, unparsable or too large to represent; a date in the
    past gives zero."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        try:
            return timedelta(seconds=int(text))
        except OverflowError:
            return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # no zone or "-0000": HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))
