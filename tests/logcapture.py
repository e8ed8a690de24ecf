"""The service's log configuration, writing to memory for a test, and undone afterwards."""

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import structlog

from services.core.logs import QUIET_LOGGERS, configure_logging


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line written, parsed: each must be one JSON object."""
        parsed = []
        for line in self.text.splitlines():
            value = orjson.loads(line)
            assert isinstance(value, dict), line
            parsed.append(value)
        return parsed

    def find(self, **fields: Any) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines()
            if all(line.get(name) == value for name, value in fields.items())
        ]


@contextmanager
def captured_logs(level: str = "info") -> Iterator[Captured]:
    root = logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    named = {
        name: (logger.handlers[:], logger.propagate, logger.level)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", *QUIET_LOGGERS)
        for logger in [logging.getLogger(name)]
    }
    captured = Captured()
    configure_logging(level, captured.stream)
    try:
        yield captured
    finally:
        root.handlers, root.level = handlers, root_level
        for name, (saved, propagate, saved_level) in named.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = saved, propagate
            logger.setLevel(saved_level)
        structlog.reset_defaults()
