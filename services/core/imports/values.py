"""Parsers for the values of an import file: CSV cells (text) or NDJSON values (JSON types).

Each takes the raw value (never empty: empty cells and nulls are "not given") and returns the
typed value or raises `ValueError` with a reason written for the person fixing the file.
"""

import re
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import orjson

Parser = Callable[[Any], Any]

MAX_AMOUNT = Decimal(10) ** 14
MAX_TAGS = 50
TAG_SEPARATOR = "|"
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_INTEGER = re.compile(r"[0-9]+")
# The same checks as the API's schemas: a syntax check for e-mail, digits and separators for phones.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?\(?[0-9][0-9 ()./-]*[0-9](?:\s*(?:x|ext\.?)\s*[0-9]{1,6})?")
# `\u0000` in serialised JSON that is not itself an escaped backslash followed by `u0000`
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _as_text(value: Any) -> str:
    """Text as given; a JSON number stands for its digits (an id exported as a number)."""
    if type(value) is str:
        text = value
    elif isinstance(value, str):
        text = str(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise ValueError(f"must be text, not {_json_type(value)}")
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    return text


def _json_type(value: Any) -> str:
    names = {
        bool: "true/false",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)


def text(max_length: int, *, strip: bool = True) -> Parser:
    def parse(value: Any) -> str:
        result = _as_text(value)
        if strip:
            result = result.strip()
            if not result:
                raise ValueError("is blank")
        if len(result) > max_length:
            raise ValueError(f"is longer than {max_length:,} characters")
        return result

    return parse


_email_text = text(320)
_phone_text = text(50)


def email(value: Any) -> str:
    result: str = _email_text(value)
    if _EMAIL.fullmatch(result) is None:
        raise ValueError("is not an e-mail address")
    return result


def phone(value: Any) -> str:
    result: str = _phone_text(value)
    if _PHONE.fullmatch(result) is None:
        raise ValueError("is not a phone number (digits, with + ( ) . / - and an extension)")
    return result


def uuid_(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(_as_text(value).strip())
    except ValueError:
        raise ValueError("is not a UUID") from None


def choice(allowed: Collection[str]) -> Parser:
    listed = ", ".join(allowed)
    members = frozenset(allowed)

    def parse(value: Any) -> str:
        result = _as_text(value).strip()
        if result not in members:
            raise ValueError(f"{result!r} is not one of {listed}")
        return result

    return parse


def timestamp(value: Any) -> datetime:
    """ISO 8601 with a zone: `2026-03-01T10:30:00+08:00`, `2026-03-01 02:30:00Z`."""
    raw = _as_text(value).strip()
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"{raw!r} is not an ISO 8601 time, e.g. 2026-03-01T10:30:00+08:00"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"{raw!r} has no time zone: add Z or an offset such as +08:00")
    return parsed


def day(value: Any) -> date:
    raw = _as_text(value).strip()
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a date as YYYY-MM-DD") from None


def past_day(value: Any) -> date:
    parsed = day(value)
    if parsed > datetime.now(UTC).date():
        raise ValueError("is in the future")
    return parsed


def amount(value: Any) -> Decimal:
    """A plain decimal, 0 or more, at most 4 decimal places: `1280`, `1280.5`, `0.0125`."""
    if isinstance(value, float):
        raw = repr(value)  # the shortest text that reads back as this float
    else:
        raw = _as_text(value).strip()
    if _DECIMAL.fullmatch(raw) is None:
        raise ValueError(
            f"{raw!r} is not an amount: digits with an optional decimal point, "
            "no sign, currency symbol or thousands separator"
        )
    try:
        parsed = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise ValueError(f"{raw!r} is not an amount") from None
    exponent = parsed.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise ValueError("has more than 4 decimal places")
    if parsed >= MAX_AMOUNT:
        raise ValueError("is 10^14 or more")
    return parsed


def integer(low: int, high: int) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raw = _as_text(value).strip()
            if _INTEGER.fullmatch(raw) is None:
                raise ValueError(f"{raw!r} is not a whole number")
            number = int(raw)
        if not low <= number <= high:
            raise ValueError(f"must be {low} to {high}")
        return number

    return parse


@cache
def _currencies() -> frozenset[str]:
    import pycountry  # loaded on first use: its data takes a while to read

    return frozenset(c.alpha_3 for c in pycountry.currencies)


def currency(value: Any) -> str:
    code = _as_text(value).strip().upper()
    if code not in _currencies():
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


def tags(value: Any) -> list[str]:
    """A JSON list of strings (NDJSON) or `|`-separated text (CSV): `vip|华东`."""
    if isinstance(value, list):
        items = [_as_text(item) for item in value]
    else:
        items = _as_text(value).split(TAG_SEPARATOR)
    result: list[str] = []
    for item in items:
        tag = item.strip()
        if not tag:
            continue
        if len(tag) > 50:
            raise ValueError(f"tag {tag[:20]!r}… is longer than 50 characters")
        if tag not in result:
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise ValueError(f"has more than {MAX_TAGS} tags")
    return result


def dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def attributes(value: Any) -> dict[str, Any]:
    """A JSON object, given as an object (NDJSON) or as its text (CSV)."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValueError("is not a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, not {_json_type(value)}")
    if _NUL_ESCAPE.search(dump_json(value)) is not None:
        raise ValueError("contains a NUL character")
    return value
