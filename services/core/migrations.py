"""Alembic, driven from code: the CLI, `retention run` and the tests migrate through here."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from services.core import partitions
from services.core.crypto import SecretBox

SOURCE_TREE = Path(__file__).resolve().parents[2]


def _ini() -> Path:
    """`alembic.ini` beside the source tree, or in the working directory for a wheel install."""
    beside = SOURCE_TREE / "alembic.ini"
    return beside if beside.exists() else Path.cwd() / "alembic.ini"


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """What autogenerate compares: not the monthly partitions, which come and go with the data
    and take their shape from their parent table."""
    return not (type_ == "table" and name is not None and partitions.is_partition(name))


def alembic_config(url: str, secret_box: SecretBox | None = None) -> Config:
    """`secret_box` encrypts stored secrets in data migrations; without it they use the
    configured key (services/core/crypto.py)."""
    config = Config(str(_ini()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if secret_box is not None:
        config.attributes["secret_box"] = secret_box
    return config


def upgrade(url: str, revision: str = "head", secret_box: SecretBox | None = None) -> None:
    """Blocking: call it from a thread when an event loop is running."""
    command.upgrade(alembic_config(url, secret_box), revision)


def downgrade(url: str, revision: str, secret_box: SecretBox | None = None) -> None:
    command.downgrade(alembic_config(url, secret_box), revision)
