"""What an import file holds, per kind: its columns, which are required, and the checks a row
must pass on its own (without the database). Columns are matched by header name, in any order.

CSV cells and NDJSON values are parsed alike; an empty cell, a missing column and a JSON null
all mean "not given".
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.core.errors import FieldError, InvalidInput
from services.core.imports import values as v
from services.core.models.enums import (
    ChannelStatus,
    ChannelTier,
    ChannelType,
    InteractionKind,
    LifecycleStage,
    TicketKind,
    TicketPriority,
    TicketStatus,
    ValueTier,
)
from services.core.models.imports import ImportKind

ATTRIBUTE_PREFIX = "attributes."

Problem = tuple[str, str]
"""A field (empty for the whole row) and why the row cannot be imported."""

Values = dict[str, Any]
Rule = Callable[[Values], list[Problem]]


@dataclass(frozen=True)
class Column:
    name: str
    parse: v.Parser
    required: bool = False


@dataclass(frozen=True)
class Schema:
    kind: ImportKind
    columns: tuple[Column, ...]
    key: str
    """The column that names the record: `external_id` or `external_ref`."""
    key_required: bool
    either: tuple[tuple[str, str, bool], ...] = ()
    """Pairs of columns naming the same thing (an id or an external reference): at most one
    per row, and one of them when the flag says the reference is required."""
    rules: tuple[Rule, ...] = ()
    by_name: dict[str, Column] = field(init=False, repr=False)
    required: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})
        object.__setattr__(self, "required", tuple(c.name for c in self.columns if c.required))


def _customer_and_channel(required_customer: bool) -> tuple[tuple[str, str, bool], ...]:
    return (
        ("customer_id", "customer_external_ref", required_customer),
        ("channel_id", "channel_external_ref", False),
    )


def _references() -> tuple[Column, ...]:
    return (
        Column("customer_id", v.uuid_),
        Column("customer_external_ref", v.text(200)),
        Column("channel_id", v.uuid_),
        Column("channel_external_ref", v.text(200)),
    )


AMOUNT_KINDS = frozenset({InteractionKind.order, InteractionKind.payment})


def _interaction_rules(row: Values) -> list[Problem]:
    """The rules of `InteractionCreate`: amounts on orders and payments, ratings on feedback."""
    problems: list[Problem] = []
    kind = row.get("kind")
    if kind is None:
        return problems
    if kind == InteractionKind.order and "amount" not in row:
        problems.append(("amount", "an order needs an amount"))
    if "amount" in row and kind not in AMOUNT_KINDS:
        problems.append(("amount", "only orders and payments carry an amount"))
    if "currency" in row and "amount" not in row:
        problems.append(("currency", "currency is only allowed with an amount"))
    for name in ("satisfaction", "nps"):
        if name in row and kind != InteractionKind.feedback:
            problems.append((name, f"only feedback carries {name}"))
    if kind == InteractionKind.feedback and "satisfaction" not in row and "nps" not in row:
        problems.append(("satisfaction", "feedback needs satisfaction (1-5) or nps (0-10)"))
    return problems


def _contract_rules(row: Values) -> list[Problem]:
    start, end = row.get("contract_start"), row.get("contract_end")
    if start is not None and end is not None and end < start:
        return [("contract_end", "is before contract_start")]
    return []


DONE_STATUSES = frozenset({TicketStatus.resolved, TicketStatus.closed})


def _ticket_rules(row: Values) -> list[Problem]:
    problems: list[Problem] = []
    status = row.get("status")
    if status is not None:
        if "resolved_at" in row and status not in DONE_STATUSES:
            problems.append(("resolved_at", f"is given but status is {status}"))
        if "closed_at" in row and status != TicketStatus.closed:
            problems.append(("closed_at", f"is given but status is {status}"))
    created: datetime | None = row.get("created_at")
    if created is not None:
        for name in ("first_responded_at", "resolved_at", "closed_at"):
            if name in row and row[name] < created:
                problems.append((name, "is before created_at"))
    return problems


SCHEMAS: dict[ImportKind, Schema] = {
    ImportKind.interactions: Schema(
        ImportKind.interactions,
        (
            *_references(),
            Column("kind", v.choice(list(InteractionKind)), required=True),
            Column("occurred_at", v.timestamp, required=True),
            Column("amount", v.amount),
            Column("currency", v.currency),
            Column("satisfaction", v.integer(1, 5)),
            Column("nps", v.integer(0, 10)),
            Column("external_id", v.text(200)),
            Column("summary", v.text(10_000, strip=False)),
            Column("attributes", v.attributes),
        ),
        key="external_id",
        key_required=False,
        either=_customer_and_channel(required_customer=True),
        rules=(_interaction_rules,),
    ),
    ImportKind.customers: Schema(
        ImportKind.customers,
        (
            Column("external_ref", v.text(200), required=True),
            Column("name", v.text(200)),
            Column("email", v.email),
            Column("phone", v.phone),
            Column("address", v.text(2000)),
            Column("owner", v.text(200)),
            Column("channel_id", v.uuid_),
            Column("channel_external_ref", v.text(200)),
            Column("value_tier", v.choice(list(ValueTier))),
            Column("lifecycle_stage", v.choice(list(LifecycleStage))),
            Column("tags", v.tags),
            Column("attributes", v.attributes),
            Column("birthday", v.past_day),
            Column("contract_end", v.day),
            Column("notes", v.text(10_000, strip=False)),
        ),
        key="external_ref",
        key_required=True,
        either=(("channel_id", "channel_external_ref", False),),
    ),
    ImportKind.channels: Schema(
        ImportKind.channels,
        (
            Column("external_ref", v.text(200), required=True),
            Column("name", v.text(200)),
            Column("type", v.choice(list(ChannelType))),
            Column("tier", v.choice(list(ChannelTier))),
            Column("region", v.text(100)),
            Column("owner", v.text(200)),
            Column("status", v.choice(list(ChannelStatus))),
            Column("contract_start", v.day),
            Column("contract_end", v.day),
            Column("tags", v.tags),
            Column("attributes", v.attributes),
            Column("notes", v.text(10_000, strip=False)),
        ),
        key="external_ref",
        key_required=True,
        rules=(_contract_rules,),
    ),
    ImportKind.tickets: Schema(
        ImportKind.tickets,
        (
            Column("external_id", v.text(200), required=True),
            *_references(),
            Column("subject", v.text(300), required=True),
            Column("description", v.text(10_000, strip=False)),
            Column("kind", v.choice(list(TicketKind)), required=True),
            Column("priority", v.choice(list(TicketPriority))),
            Column("status", v.choice(list(TicketStatus))),
            Column("assignee", v.text(200)),
            Column("tags", v.tags),
            Column("resolution", v.text(10_000, strip=False)),
            Column("satisfaction", v.integer(1, 5)),
            Column("created_at", v.timestamp),
            Column("first_responded_at", v.timestamp),
            Column("resolved_at", v.timestamp),
            Column("closed_at", v.timestamp),
        ),
        key="external_id",
        key_required=True,
        either=_customer_and_channel(required_customer=True),
        rules=(_ticket_rules,),
    ),
}


def normalise(name: str) -> str:
    """Header names match case-insensitively, with spaces and dashes read as underscores; the
    key of an `attributes.<key>` column is kept as written."""
    stripped = name.strip()
    if stripped.lower().startswith(ATTRIBUTE_PREFIX):
        return ATTRIBUTE_PREFIX + stripped[len(ATTRIBUTE_PREFIX) :].strip()
    return stripped.lower().replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class Header:
    """The columns of a file, matched to the schema: which cell holds which field."""

    schema: Schema
    names: tuple[str, ...]
    cells: tuple[tuple[int, Column], ...]
    attribute_cells: tuple[tuple[int, str], ...]


def _unknown(schema: Schema, names: Iterable[str]) -> list[str]:
    return [
        n
        for n in names
        if n not in schema.by_name
        and not (n.startswith(ATTRIBUTE_PREFIX) and len(n) > len(ATTRIBUTE_PREFIX))
    ]


def _missing(schema: Schema, names: set[str]) -> list[str]:
    missing = [c.name for c in schema.columns if c.required and c.name not in names]
    for first, second, required in schema.either:
        if required and first not in names and second not in names:
            missing.append(f"{first} or {second}")
    return missing


def read_header(schema: Schema, raw: Sequence[str]) -> Header:
    """Match a CSV header to the schema, or refuse the file before anything is written."""
    names = tuple(normalise(n) for n in raw)
    problems: list[FieldError] = []
    distinct = list(dict.fromkeys(names))
    for name in distinct:
        if names.count(name) > 1:
            problems.append(FieldError(name, "appears twice in the header", "duplicate"))
    if "" in distinct:
        problems.append(FieldError("", "a column has no name", "unnamed"))
    for name in _unknown(schema, (n for n in distinct if n)):
        problems.append(FieldError(name, f"is not a column of {schema.kind}", "unknown"))
    for name in _missing(schema, set(distinct)):
        problems.append(FieldError(name, "is a required column", "missing"))
    if problems:
        raise header_error(schema, problems)
    return Header(
        schema,
        names,
        tuple((i, schema.by_name[n]) for i, n in enumerate(names) if n in schema.by_name),
        tuple(
            (i, n[len(ATTRIBUTE_PREFIX) :]) for i, n in enumerate(names) if n not in schema.by_name
        ),
    )


def check_keys(schema: Schema, keys: Iterable[str]) -> None:
    """The first NDJSON object stands for a header: fields no schema column matches mean the
    file is of another kind, and it is refused before anything is written."""
    unknown = _unknown(schema, (normalise(k) for k in keys))
    if unknown:
        raise header_error(
            schema, [FieldError(n, f"is not a field of {schema.kind}", "unknown") for n in unknown]
        )


def header_error(schema: Schema, problems: list[FieldError]) -> InvalidInput:
    described = "; ".join(f"{p.field or '(blank)'} {p.message}" for p in problems)
    allowed = ", ".join(c.name for c in schema.columns)
    return InvalidInput(
        f"The file's columns do not fit an import of {schema.kind}: {described}. "
        f"Columns: {allowed}, and attributes.<key>.",
        problems,
    )


def parse_cells(header: Header, cells: Sequence[str]) -> tuple[Values, list[Problem]]:
    """One CSV record: the parsed values of its non-empty cells, and its problems."""
    if len(cells) != len(header.names):
        return {}, [("", f"has {len(cells)} values; the header has {len(header.names)} columns")]
    row: Values = {}
    problems: list[Problem] = []
    for index, column in header.cells:
        cell = cells[index]
        if cell == "":
            continue
        try:
            row[column.name] = column.parse(cell)
        except ValueError as exc:
            problems.append((column.name, str(exc)))
    if header.attribute_cells:
        extra = {key: cells[i] for i, key in header.attribute_cells if cells[i] != ""}
        _merge_attributes(row, extra, problems)
    return _finish(header.schema, row, problems)


def parse_object(schema: Schema, raw: Any) -> tuple[Values, list[Problem]]:
    """One NDJSON object: the parsed values of its non-null fields, and its problems."""
    if not isinstance(raw, dict):
        return {}, [("", "is not a JSON object")]
    row: Values = {}
    problems: list[Problem] = []
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        name = normalise(key)
        if value is None or value == "":
            continue
        column = schema.by_name.get(name)
        if column is not None:
            try:
                row[name] = column.parse(value)
            except ValueError as exc:
                problems.append((name, str(exc)))
        elif name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX):
            extra[name[len(ATTRIBUTE_PREFIX) :]] = value
        else:
            problems.append((name, f"is not a field of {schema.kind}"))
    if extra:
        _merge_attributes(row, extra, problems)
    return _finish(schema, row, problems)


def _merge_attributes(row: Values, extra: dict[str, Any], problems: list[Problem]) -> None:
    """`attributes.<key>` values join the `attributes` object, and win over its same keys."""
    try:
        checked = v.attributes(extra)
    except ValueError as exc:
        problems.append(("attributes", str(exc)))
        return
    row["attributes"] = {**row.get("attributes", {}), **checked}


def _finish(schema: Schema, row: Values, problems: list[Problem]) -> tuple[Values, list[Problem]]:
    failed = {name for name, _ in problems} if problems else ()
    for name in schema.required:
        if name not in row and name not in failed:
            problems.append((name, "is required"))
    for first, second, required in schema.either:
        if first in row:
            if second in row:
                problems.append((second, f"give {first} or {second}, not both"))
        elif required and second not in row and first not in failed and second not in failed:
            problems.append((second, f"{first} or {second} is required"))
    if not problems:
        for rule in schema.rules:
            problems.extend(rule(row))
    return row, problems
