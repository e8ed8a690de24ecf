"""Imports count their rows by kind and outcome, as each batch commits."""

from pathlib import Path

from prometheus_client import REGISTRY

from services.core.config import Settings
from services.core.imports.service import ImportOptions, import_file
from services.core.models.imports import ImportKind
from tests.core.imports.conftest import World, write

HEADER = "external_id,customer_external_ref,kind,occurred_at"


def _rows(kind: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "retention_import_rows_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


async def test_import_rows_are_counted_by_kind_and_outcome(
    settings: Settings, world: World, tmp_path: Path
) -> None:
    outcomes = ("imported", "duplicate", "failed")
    before = {o: _rows("interactions", o) for o in outcomes}
    customers = _rows("customers", "imported")
    first = write(
        tmp_path,
        "first.csv",
        [
            HEADER,
            "m-1,C-1,visit,2026-03-01T10:30:00+08:00",
            "m-2,C-2,call,2026-03-02T09:00:00Z",
            "m-3,C-1,visit,2026-03-03",  # no time zone
        ],
    )
    await import_file(settings, ImportKind.interactions, first, ImportOptions(batch_size=2))
    second = write(
        tmp_path, "second.csv", [HEADER, "m-1,C-1,visit,2026-03-01T10:30:00+08:00", "m-4,C-9,x,y"]
    )
    await import_file(settings, ImportKind.interactions, second, ImportOptions(recompute=False))

    after = {o: _rows("interactions", o) for o in outcomes}
    assert {o: after[o] - before[o] for o in outcomes} == {
        "imported": 2,
        "duplicate": 1,
        "failed": 2,
    }
    assert _rows("customers", "imported") == customers  # counted under their own kind only
