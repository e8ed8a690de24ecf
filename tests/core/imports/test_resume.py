"""An import interrupted after some batches continues after the last committed line: nothing
is stored twice (even rows without an external_id), no event is written twice, and the error
report holds each problem once."""

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from services.core.imports import runs
from services.core.imports.reader import Position
from services.core.imports.service import ImportOptions, import_file
from services.core.models.imports import ImportKind
from tests.core.imports.conftest import World, fetch, report_lines, write
from tests.helpers import count_rows

KIND = ImportKind.interactions


class Interrupted(Exception):
    pass


class StopAfter:
    """Stops the import as a crash would, once `batches` batches have committed."""

    def __init__(self, batches: int) -> None:
        self.batches = batches
        self.seen: list[runs.Progress] = []

    def started(self, run: runs.Run, size: int, start: Position) -> None:
        assert not run.resumed

    def committed(self, batch: runs.Progress) -> None:
        self.seen.append(batch)
        if len(self.seen) == self.batches:
            raise Interrupted


def _history(rows: int) -> list[str]:
    """Rows without an external_id on odd lines; line 4 and line 15 are bad."""
    lines = ["external_id,customer_external_ref,kind,occurred_at"]
    for n in range(rows):
        external_id = f"r-{n}" if n % 2 == 0 else ""
        customer = "NOBODY" if n in (2, 13) else f"C-{n % 3 + 1}"
        lines.append(f"{external_id},{customer},visit,2026-03-01T10:{n:02d}:00Z")
    return lines


@pytest.mark.parametrize("parallel", [1, 2])
async def test_an_interrupted_import_resumes_without_duplicates(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path, parallel: int
) -> None:
    path = write(tmp_path, "long.csv", _history(20))
    options = ImportOptions(batch_size=3, parallel=parallel)
    stop = StopAfter(2)
    with pytest.raises(Interrupted):
        await import_file(settings, KIND, path, options, stop)

    # Two batches (lines 2-7) committed: five rows and the problem of line 4.
    assert await count_rows(engine, "interactions") == 5
    [run] = await fetch(engine, "SELECT * FROM import_runs")
    assert (run["status"], run["committed_line"], run["rows"], run["failed"]) == (
        "running",
        7,
        6,
        1,
    )
    assert report_lines(path) == [(4, "customer_external_ref", "no customer has this value")]
    # A batch that wrote its report lines but never committed leaves them behind: resuming
    # cuts them off.
    with (tmp_path / "long.csv.errors.csv").open("a", encoding="utf-8") as report:
        report.write(f"{path},9,kind,from a batch that never committed\n")

    result = await import_file(settings, KIND, path, options)

    assert result.resumed_after_line == 7
    assert (result.rows, result.imported, result.duplicates, result.failed) == (20, 18, 0, 2)
    assert await count_rows(engine, "interactions") == 18
    stored = await fetch(
        engine, "SELECT occurred_at, count(*) AS n FROM interactions GROUP BY occurred_at"
    )
    assert len(stored) == 18
    assert all(r["n"] == 1 for r in stored)
    assert report_lines(path) == [
        (4, "customer_external_ref", "no customer has this value"),
        (15, "customer_external_ref", "no customer has this value"),
    ]
    # One audit event per batch of three, each batch once.
    assert await count_rows(engine, "audit_events", "resource_type = 'interaction_import'") == 7
    [run] = await fetch(engine, "SELECT * FROM import_runs")
    assert (run["status"], run["committed_line"], run["rows"], run["imported"]) == (
        "finished",
        21,
        20,
        18,
    )
    assert await count_rows(engine, "audit_events", "resource_type = 'interaction_import'") == 7
    assert await count_rows(engine, "jobs") == 1


async def test_a_changed_file_starts_over_and_dedups_by_external_id(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    lines = ["external_id,customer_external_ref,kind,occurred_at"] + [
        f"x-{n},C-1,visit,2026-03-01T10:{n:02d}:00Z" for n in range(6)
    ]
    path = write(tmp_path, "moving.csv", lines)
    with pytest.raises(Interrupted):
        await import_file(settings, KIND, path, ImportOptions(batch_size=2), StopAfter(1))
    write(tmp_path, "moving.csv", [*lines, "x-6,C-2,call,2026-03-02T10:00:00Z"])

    result = await import_file(settings, KIND, path, ImportOptions(batch_size=2))

    assert result.resumed_after_line is None
    assert (result.rows, result.imported, result.duplicates) == (7, 5, 2)
    assert await count_rows(engine, "interactions") == 7
    statuses = await fetch(engine, "SELECT status FROM import_runs ORDER BY started_at")
    assert [r["status"] for r in statuses] == ["abandoned", "finished"]
