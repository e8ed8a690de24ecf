"""Alembic, driven from code: the CLI, `retention run` and the tests migrate through here."""

from pathlib import Path

from alembic import command
from alembic.config import Config

SOURCE_TREE = Path(__file__).resolve().parents[2]


def _ini() -> Path:
    """`alembic.ini` beside the source tree, or in the working directory for a wheel install."""
    beside = SOURCE_TREE / "alembic.ini"
    return beside if beside.exists() else Path.cwd() / "alembic.ini"


def alembic_config(url: str) -> Config:
    config = Config(str(_ini()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking: call it from a thread when an event loop is running."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
