"""Substring search for `q`: ILIKE served by trigram indexes; works for CJK and Latin text."""

from typing import Any

from sqlalchemy import ColumnElement


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column: Any, text: str) -> ColumnElement[bool]:
    result: ColumnElement[bool] = column.ilike(f"%{escape_like(text)}%", escape="\\")
    return result
