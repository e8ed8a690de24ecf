"""Files uploaded to `POST /v1/imports`: where the API puts them and the worker finds them.

Each upload gets a directory of its own under `Settings.import_dir`, named by its job id, holding
the file (named by its format, whatever the client called it) and, beside it, its error report.
The API and the workers compute the same paths from the job, so they must share the directory.
"""

import uuid
from pathlib import Path, PurePosixPath

from services.core.config import Settings
from services.core.imports.report import report_path
from services.core.imports.service import ImportFormat

JOB_KIND = "import"
"""The `jobs.kind` of an uploaded import, and the kind its `jobs.requested` event names."""

PARTIAL = "upload.part"
"""The name an upload has while it is received, before its format is known."""

FILENAME_MAX = 255


def job_dir(settings: Settings, job_id: uuid.UUID) -> Path:
    return settings.import_dir / str(job_id)


def upload_path(settings: Settings, job_id: uuid.UUID, format_: ImportFormat) -> Path:
    """The uploaded file, once received."""
    return job_dir(settings, job_id) / f"upload.{format_.value}"


def error_report_path(settings: Settings, job_id: uuid.UUID, format_: ImportFormat) -> Path:
    return report_path(upload_path(settings, job_id, format_))


def display_name(filename: str) -> str:
    """The client's file name without any directory part or control characters: what the
    error report and the job's params call the file."""
    name = PurePosixPath(filename.replace("\\", "/")).name
    cleaned = "".join(c for c in name if c.isprintable()).strip()
    return cleaned[:FILENAME_MAX]
