"""JSON text of any valid JSON value: orjson, and the standard library for what orjson refuses
(integers beyond 64 bits, which clients may send and PostgreSQL's jsonb stores)."""

import json
from collections.abc import Callable
from typing import Any

import orjson


def dumps(
    value: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
) -> bytes:
    try:
        return orjson.dumps(
            value, default=default, option=orjson.OPT_SORT_KEYS if sort_keys else None
        )
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=sort_keys, default=default).encode()
